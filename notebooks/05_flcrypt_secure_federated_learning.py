# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 — FLCrypt: federated learning with encrypted aggregation, and differential privacy
#
# Broadcasters, or the microphones of an industrial plant, want one shared sound classifier
# without pooling their recordings. Federated learning keeps the recordings where they are: each
# client trains on its own data and sends only model weights. But the server that averages them
# still sees every client's weights, and weights give away what a client has heard. FLCrypt
# encrypts the weights with a homomorphic scheme, so the server can add them up without being
# able to read them; differential privacy then bounds what the *final* model gives away.
#
# **What you will learn**
# - FedAvg on Flower, the field's framework, with non-IID clients; the same apps on Flower's
#   deployment engine (separate processes, as across machines), its simulation engine, or in one
#   process;
# - CKKS homomorphic encryption with TenSEAL: packing weights into ciphertexts, adding them
#   without the secret key, what it costs in time, bytes and memory, and how the cost grows with
#   the model;
# - what an honest-but-curious server learns from a plaintext update, and what it holds instead
#   under encryption;
# - DP-FedAvg with client-level privacy: clipping on the client, noise σ = z·S/m, and (ε, δ) from
#   two accountants.
#
# **Reference** FLCrypt {cite}`fuhrmeister2024flcrypt`; FedAvg {cite}`mcmahan2017fedavg`;
# CKKS {cite}`cheon2017ckks`; TenSEAL {cite}`benaissa2021tenseal`; Flower
# {cite}`beutel2020flower`; DP-FedAvg {cite}`mcmahan2018dpfedavg`; Rényi DP
# {cite}`mironov2017rdp`; label leakage from gradients {cite}`zhao2020idlg`; secure aggregation
# by masking {cite}`bonawitz2017secagg`.
#
# **Run it**: open this notebook in Colab or on a JupyterHub from the launch button above
# (the first cell installs the helpers in Colab), or run it with papermill:
# `ai4m run 05 --profile smoke -p clients 16 --out runs/` (see *How to run*).

# %% tags=["hide-input"]
# In Colab (and only there): install this chapter's helpers at the release this
# notebook belongs to (pip's output shows what it installs; a minute or two).
import sys

REPO = "git+https://github.com/ai4media/trustworthy-ai-for-media"
if "google.colab" in sys.modules:  # %pip, spelled so that the text twin is valid Python
    get_ipython().run_line_magic(  # noqa: F821
        "pip", f'install "ai4m-helpers[federated] @ {REPO}@v0.1.0"'
    )

# %% tags=["parameters", "hide-input"]
# Every knob of the chapter. None means "the profile's value";
# `ai4m list 05` shows them all.
profile = "smoke"
seed = 0
device = "auto"
results_path = ""
seeds = None
clients = None
train_per_class = None
test_per_class = None
alpha = None
width = None
rounds = None
local_epochs = None
lr = None
batch = None
ckks = None
clip = None
epsilons = None
dp_noise = None
delta = None
dp_encrypted = None
sweep_ciphertexts = None
sweep_clients = None
sweep_repeats = None
engine = None

# %% tags=["hide-input"]
# Check the parameters before anything heavy is imported:
# a bad value stops here, in one line.
from ai4m_helpers.chapter import start_chapter
from ai4m_helpers.federated.params import PARAMS

P, DEVICE, record = start_chapter(
    "05", PARAMS, globals()
)  # refuses bad values before any work

# %% tags=["hide-input"]
import logging
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ai4m_helpers.chapter import progress_bar
from ai4m_helpers.claims import claims_table
from ai4m_helpers.federated import data, experiment as ex, plots
from ai4m_helpers.federated.models import SoundNet, count_parameters
from ai4m_helpers.results import timing_text
from ai4m_helpers.runtime import replicate_seeds

logging.getLogger("flwr").setLevel(logging.WARNING)  # Flower logs every round
workdir = tempfile.mkdtemp(prefix="ai4m-05-")

# %% [markdown]
# ## The task: which surface is the ball rolling on?
#
# The paper's task is a proxy for fault detection in industrial sound: metal balls with
# different surfaces roll and bounce on a plate, and a classifier tells the surfaces apart from
# the sound. Those recordings are not public, so the chapter generates clips of the same kind
# (8 kHz, half a second): a train of impacts, each a few exponentially damped partials of the
# ball's modes, plus rolling noise whose frequency band and level depend on the surface
# (`smooth`, `brushed`, `knurled`, `dented`; a dent also makes the ball bounce twice), plus
# background noise at a random signal-to-noise ratio between 5 and 25 dB. Ball size, impact rate
# and loudness are drawn from the same ranges for every surface: only the texture of the sound
# tells the surfaces apart. Features are log-mel spectrograms (40 bands, 32 ms frames). A reader
# with recordings of their own loads them with `data.load_sound_folder(root)` (one folder of WAV
# files per class).
#
# Each client is a sensor that hears some surfaces more than others: the training clips are
# split with Dirichlet proportions (α = 0.5 by default: most clients hear one or two surfaces
# mostly). The common test set is balanced. The generator knows nothing about encryption or
# privacy; its one knob that matters for a claim is α, which decides how much a client's update
# says about its labels (claim 4): with a large α every client hears every surface alike.

# %%
seeds_run = replicate_seeds(P["seed"], P["seeds"])
setting = ex.fed_setting(P, seeds_run[0])
design = setting.design()
fig, axes = plt.subplots(
    1, 5, figsize=(13, 2.6), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.6]}
)
examples = [data.clip(seeds_run[0], 10_000 + c, c) for c in range(len(data.SURFACES))]
plots.spectrograms(axes[:4], data.log_mel(np.stack(examples)), list(data.SURFACES))
counts = np.stack(
    [
        np.bincount(design.labels()[part], minlength=len(data.SURFACES))
        for part in design.partitions()
    ]
)
plots.client_mix(axes[4], counts, data.SURFACES)
plt.tight_layout()
plt.show()

# %% [markdown]
# The model is small on purpose, as the sensors' would be: each mel band's mean and standard
# deviation over time (statistics pooling), a layer norm over that clip's 80 numbers (no
# statistics pooled across clients), and an MLP of two hidden layers.

# %%
size = count_parameters(SoundNet(width=P["width"]))
print(f"SoundNet(width={P['width']}): {size:,} parameters")

# %% [markdown]
# ## FedAvg on Flower, and where the encryption goes
#
# One round of FedAvg with K clients, client k holding n_k clips (N in all):
#
# 1. the server sends the global weights w_t to the clients;
# 2. each client runs E epochs of SGD from w_t on its own clips and gets w_k;
# 3. the server averages: w_{t+1} = Σ_k (n_k / N) w_k.
#
# **FLCrypt** applies fully homomorphic encryption to step 3, so that the aggregator never sees
# a participant's unencrypted weights. The paper's scheme, parameters and key setup are not
# given in what could be retrieved of it; this chapter's choices are the standard ones. It uses
# CKKS, a homomorphic scheme for approximate real numbers, through TenSEAL. A key holder makes
# a CKKS context (ring degree 8192: 4096 numbers packed into one ciphertext; a modulus chain of
# 60-40-40-60 bits, 200 bits in all, within the 218 that give about 128-bit security at this
# degree; scale 2⁴⁰) and its keys. The clients share the secret key; the server gets only the
# public context: the parameters and the public key, without relinearisation or Galois keys,
# since adding ciphertexts and multiplying them by plaintext numbers needs neither (Galois keys
# alone would weigh 35 MB). A client flattens its weights, encrypts them in pieces of 4096 and
# sends the serialised bytes. The server multiplies each client's ciphertexts by the plaintext
# n_k / N and adds them up; it cannot decrypt the sum. The clients decrypt it at the start of the
# next round.
#
# **The threat model.** The server is honest but curious: it runs the protocol as written and
# looks at everything it receives. What it receives is ciphertexts and each client's n_k, which
# FedAvg's weights need (a client could hide it too by encrypting n_k·w_k and n_k); the
# clients' own measurements (their losses, the norms of their updates, their timings) stay on
# the clients. The server does not collude with a client, who holds the secret key: one key
# shared by all clients is this chapter's simplification (threshold or multi-key CKKS removes
# it). A *dishonest* server is out of scope: it could return one client's ciphertext as the
# "sum", and every client would decrypt that client's model. So is a server that learns
# decrypted results: CKKS decryptions carry information about the noise, and Li and Micciancio
# showed that a party holding both a ciphertext and its decryption can recover the secret key
# (security against such attacks, IND-CPA-D, needs noise flooding before anything decrypted is
# released). The network is out of scope too: the deployment engine runs here with
# `--insecure`, and a real deployment uses TLS. Encryption hides the *updates*; it says nothing
# about what the final model reveals, which is differential privacy's job (below).
#
# The chapter's two Flower apps (`ai4m_helpers.federated.apps`) are a `ClientApp` and a
# `ServerApp` whose strategy is Flower's `FedAvg` with its aggregation replaced by one that works
# on ciphertexts. The same two objects run on three engines:
#
# - **Flower's deployment engine**, the path of a federation across machines: a SuperLink
#   (`flower-superlink`) and one SuperNode per client (`flower-supernode --node-config
#   "partition-id=0 num-partitions=8 secret-context='…'"`), the app submitted with `flwr run`;
#   `ai4m_helpers.federated.deployment.run_deployment` starts them all on localhost, and the
#   tests run it;
# - **Flower's simulation engine** (`engine = "simulation"`), the ClientApps as Ray actors on
#   one machine (needs Ray: `pip install "ai4m-helpers[course]"`);
# - **in one process** (`engine = "in-process"`, the default): a Flower `Grid` that hands each
#   message to the ClientApp directly, after a round trip through Flower's wire format. The
#   chapter runs this way, because its clocks should time the method and not the transport, and
#   because starting Ray costs more than this chapter's whole federation.
#
# Every federation of a seed starts from the same weights, and its clients see the same clips in
# the same order: a difference between the plaintext and the encrypted run can only come from
# CKKS. (Everything is seeded from the run's seed except the keys, which SEAL draws from a
# secure source, so CKKS's own rounding noise differs from run to run.) Per seed the chapter
# runs: plaintext FedAvg, encrypted FedAvg, DP-FedAvg with clipping only (z = 0), and DP-FedAvg
# at every ε of `epsilons`.

# %%
runs = []
for s in progress_bar(seeds_run, "seeds"):
    with record.phase("federations"):
        runs.append(ex.run_seed(P, s, workdir))
rows = ex.frame(runs, "runs")
curves = ex.frame(runs, "curves")
costs = ex.frame(runs, "costs")
attack = ex.frame(runs, "attack")
rows.groupby("run", sort=False)[["accuracy", "wall_s"]].agg(["mean", "std"]).round(3)

# %% [markdown]
# ## Encrypted and plaintext FedAvg learn the same model
#
# Test accuracy of the global model after each round (mean over seeds; the band spans the
# seeds). The encrypted curve lies on top of the plaintext one. CKKS is approximate: one
# encrypted aggregation differs from the plaintext one by about 10⁻⁸ (at scale 2⁴⁰, measured on
# each seed's first round below), and SGD carries such differences on through the rounds and can
# amplify them, so the final weights can differ by far more (up to 10⁻² in some runs). That is
# why agreement is judged on what the model answers: its test predictions.

# %%
chance = 1 / len(data.SURFACES)
fig, ax = plt.subplots(figsize=(7, 3.2))
plots.accuracy_curves(ax, curves, [ex.PLAIN, ex.ENCRYPTED], chance)
ax.set_title("test accuracy of the global model", fontsize=10)
plt.show()
pd.DataFrame(
    {
        "seed": [r.seed for r in runs],
        "test predictions that differ": [r.changed for r in runs],
        "test clips": [r.tested for r in runs],
        "largest weight difference after training": [r.drift for r in runs],
        "error of one encrypted aggregation (round 1)": [
            r.aggregation_error for r in runs
        ],
    }
)

# %% [markdown]
# ## What it costs
#
# One round, per phase: a client's local training, encryption and decryption (mean over
# clients), and the server's aggregation. Encryption also multiplies the bytes a client sends:
# a CKKS ciphertext holds 4096 numbers in about 330 kB, some 80 bytes per parameter against 4
# for a float32 when the ciphertexts are full. Cost goes by whole ciphertexts: this model's
# 9,764 parameters fill three, which cost as much as 12,288 parameters would, about 100 bytes
# per parameter.

# %%
fig, ax = plt.subplots(figsize=(7, 1.9))
plots.round_costs(ax, costs)
plt.show()
per_round = costs.groupby("run", sort=False)[
    ["train_s", "encrypt_s", "aggregate_s", "decrypt_s", "bytes_up"]
].mean()
per_round.assign(bytes_up=(per_round["bytes_up"] / 1e3).round(1)).rename(
    columns={"bytes_up": "kB sent per client"}
).round(4)

# %% [markdown]
# FLCrypt's finding is that runtime grows **linearly** with the number of model parameters. The
# sweep encrypts weight vectors of 1, 2, 4, … full ciphertexts for `sweep_clients` clients,
# adds them on the server's public context and decrypts the sum, timing each phase on its own
# (encryption: the fastest client, since all do the same work; aggregation and decryption: the
# best of three), `sweep_repeats` times with new keys, after one warm-up. Sizes are whole
# ciphertexts, since cost goes by ciphertexts (a step function of P that a straight line
# follows on average). The server's memory is what it holds while adding: the bytes received and
# the parsed ciphertexts, whose size (2 polynomials × the primes in use × 8192 coefficients × 8
# bytes) is read from SEAL's objects; the process's resident memory cannot show it, because SEAL
# allocates from a pool that it keeps once grown. That memory is linear by construction; time
# is what could grow faster (caches, allocation). A straight line a + b·P fits well when the
# growth is linear, fixed overheads included; the claim compares the time per parameter over
# the upper half of the sizes with that over the lower half, which is 1 for linear growth and
# more when some overhead grows faster. Timing on a shared machine is noisy (other work only
# ever adds time): with a small sweep the interval can be too wide to decide.

# %%
with record.phase("cost sweep"):
    sweep = ex.cost_sweep(P, seeds_run[0])
fits = ex.slopes(sweep)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
plots.cost_sweep(axes, sweep, fits)
plt.tight_layout()
plt.show()
summary = fits.groupby("measure")[
    ["per parameter", "R²", "upper / lower marginal cost"]
].mean()
summary.assign(
    **{
        "per parameter": [
            f"{v * 1e6:.3g} µs" if m.endswith("_s") else f"{v:.4g} B"
            for m, v in summary["per parameter"].items()
        ]
    }
).round(4)

# %%
print(
    f"ciphertext expansion: {sweep['expansion'].median():.1f} × the float32 weights; "
    "largest error of a decrypted weighted sum in the sweep: "
    f"{sweep['max_error'].max():.1e}"
)

# %% [markdown]
# ## What the server sees
#
# Why encrypt at all? Because a plaintext update gives away what a client has heard. After local
# training, the output bias of a class rises when the client's clips hold many examples of it (the
# gradient of the cross-entropy with respect to a bias is the predicted minus the true share of
# that class), so the surface whose bias rose most is a good guess of the client's most frequent
# one. That is label leakage from an update in the spirit of iDLG {cite}`zhao2020idlg`, here for
# a client's whole label mix, on the first round, where the server knows the weights it sent.
# The non-IID split is what makes a client's most frequent surface worth guessing (with α = 100
# every client hears every surface alike). Under encryption the server holds
# ciphertexts: it cannot decrypt them (TenSEAL refuses without the secret key), encrypting the
# same weights twice gives different bytes (CKKS encryption is randomised, so not even equality
# can be tested), and the bytes of a client's ciphertext are distributed as those of a
# ciphertext of zeros: the figure is an illustration, not a proof. (The bytes are not uniform: a
# ciphertext stores numbers modulo primes below 2⁶⁰ in 64-bit words, compressed, and that
# structure belongs to the encoding, not to the weights. What makes a ciphertext carry nothing
# to someone without the key is CKKS's semantic security under the ring-LWE assumption.)

# %%
view = ex.ciphertext_view(P, seeds_run[0], workdir)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.0))
plots.server_view(axes[0], axes[1], attack, view["byte frequencies"], data.SURFACES)
plt.tight_layout()
plt.show()
print(
    f"majority surface guessed right for {attack['hit'].sum()} "
    f"of {len(attack)} clients "
    f"(chance {chance:.0%})"
)
pd.Series({k: v for k, v in view.items() if k != "byte frequencies"})

# %% [markdown]
# Central DP (below) does not change this picture: the clipping happens on the client but the
# noise is added by the server, after it has seen each update (unless the clients add it, see
# `dp_noise`). Encryption and DP protect against different parties.
#
# ## Differential privacy: what the final model may reveal
#
# **DP-FedAvg** {cite}`mcmahan2018dpfedavg` protects a whole client: the model must look almost
# the same whether or not one client (all its recordings) took part. Each client clips its
# update Δ_k = w_k − w_t to norm S on its own side (the server cannot clip what it cannot read);
# the server averages with a fixed denominator m (the clients sampled, here all of them; fixed in
# advance, so that a client that drops out does not change the sensitivity S/m of adding or
# removing one client) and adds Gaussian noise N(0, σ²I) with σ = z·S/m: to the plaintext
# average, or, when the DP runs are encrypted (`dp_encrypted = True`; off by default to keep
# within the time budget, since the noise is the same either way), homomorphically to the
# encrypted sum. With `dp_noise = "clients"` each client adds N(0, mσ²) to its own clipped
# weights before they leave (distributed DP): the average carries the same noise, and nobody has
# to trust the server to add it. With every client in every round (q = 1) nothing is amplified by
# sampling, and ε after R rounds is that of R Gaussian mechanisms of multiplier z. Each run gets
# the z that spends its target ε (a root search on Opacus' Rényi-DP accountant); the table
# recomputes ε from z with Google's dp-accounting (its own RDP code, and its tight
# privacy-loss-distribution accountant). CKKS's own approximation error is not a DP mechanism.
#
# With few clients the noise is large next to what it hides: σ√P, the norm of the noise on an
# average of P parameters, exceeds the clipping norm S itself once z > m / √P, about 0.08 here.
# An ε of 8 needs z ≈ 2 over these rounds: with eight clients, client-level DP at any ε worth
# the name leaves little of the model, and the larger ε of the grid (64; the `full` profile adds
# 512) are there to show the shape of the trade, not as guarantees (an ε of 64 bounds the odds
# ratio of any test by e⁶⁴, which promises nothing). That is why production
# DP-FedAvg samples among thousands of clients.

# %%
table = ex.privacy_table(P)
table.round(4)

# %%
fig, ax = plt.subplots(figsize=(6.5, 3))
plots.dp_tradeoff(ax, rows, ex.PLAIN, ex.CLIPPED)
ax.axhline(chance, color="black", lw=0.6, alpha=0.5)
plt.show()
rows[rows["run"].str.startswith("DP")].groupby("run", sort=False)[
    ["ε", "accuracy", "clipped share"]
].mean().round(3)

# %% [markdown]
# ## The claims
#
# Measured on this run, never forced; margins fixed in the code before any run:
# 1. **encrypted aggregation matches plaintext FedAvg**: one encrypted weighted sum within 10⁻⁶ of
#    the plaintext one (each seed's first round), and encryption changes at most 1 % of the final
#    model's test predictions (pooled over seeds, exact binomial interval; the clips of one seed
#    share a model, so the interval is somewhat narrower than it should be);
# 2. **encryption and aggregation time grow linearly with the number of parameters**: the time
#    per parameter over the upper half of the sweep
#    is between 0.8 and 1.25 times that over the lower half (on the median over repeats at each
#    size; the replicate is a repeat of the sweep, with a percentile-bootstrap interval);
# 3. **DP-FedAvg trades accuracy for a stated (ε, δ)**: against DP-FedAvg with the same clipping
#    and weights but no noise (so that only the noise differs), accuracy is lost at the strictest
#    ε of the grid, and the loosest ε keeps more of it than the strictest (both paired by seed;
#    any difference counts);
# 4. **a plaintext update gives away the client's most frequent surface**: the server's guess is
#    right for more than a quarter (chance) of the clients, pooled over seeds (exact interval).
#    The margin is chance; the non-IID split decides how much there is to find.

# %%
claims = record.add_claims(ex.decide_claims(runs, sweep, P))
claims_table(claims)

# %% [markdown]
# ## What it means for media
#
# A group of broadcasters can train a shared audio or content classifier without any of them,
# or the host of the aggregation, reading another's model updates, and encryption costs accuracy
# nothing that a test set can see. It costs time, bytes and memory, linearly in the model's size:
# twenty to twenty-five times the bytes of the plain weights per client and round, and a few
# microseconds of CPU per parameter, which is affordable for the small models of sensors and set-top boxes,
# and a real bill for a large model. Encryption protects the updates in transit and at the
# server; what the finished model reveals about a participant needs differential privacy, and
# client-level DP needs many participants before its noise stops hurting.
#
# ## What was simplified, and why
#
# - **Data.** Generated impact sounds stand in for the paper's recordings, which are not public;
#   the generator follows the physics loosely (damped modal partials, band-limited rolling noise),
#   not a measured plate.
# - **Keys and scheme.** CKKS with one secret key shared by all clients and made by a trusted key
#   holder is this chapter's choice (the paper's own could not be retrieved); a client that
#   colludes with the server breaks it. Threshold or multi-key CKKS, or masking-based secure
#   aggregation (SecAgg {cite}`bonawitz2017secagg` and its successor SecAgg+, which Flower
#   implements), remove the single key. Clients encrypt with the public key; since they hold the
#   secret key, symmetric encryption would halve what they send.
# - **Security of released results.** Decrypted models are not noise-flooded (see the threat
#   model): fine against an honest-but-curious server that never sees a decryption, not beyond.
# - **Engine.** The chapter's federations run in one process through Flower's message path; the
#   deployment engine (separate processes on localhost) runs the same apps, encrypted, in the
#   tests, and gives the same model.
# - **Noise source.** DP noise comes from a seeded generator so that a run can be repeated; a
#   deployment draws it from a secure source.
# - **Accounting.** Every client takes part in every round (q = 1), so ε is that of the
#   composed Gaussian mechanism with no amplification; the RDP bound is an upper bound, and the
#   PLD accountant's value shows how loose.
# - **The attack.** A first-round bias attack on the majority label is a simple, strong
#   illustration; gradient inversion attacks recover far more from plaintext updates.
# - **DP runs.** They run on plaintext by default (`dp_encrypted`): the noise and the clipping
#   are the same, and the homomorphic noise path is checked by the tests.
#
# ## Exercises
# 1. Set `alpha` to 100 (every client hears every surface alike): does the label attack still
#    work (claim 4 should fail: that is the point), and does FedAvg converge faster?
# 2. Choose `ckks` "4096/20": how large is the aggregation error now, and do the encrypted and
#    plaintext models still agree?
# 3. Raise `clients` to 32 with the same data: how does DP-FedAvg's accuracy at ε = 8 change, and
#    why? (Look at σ = z·S/m.) Then set `dp_noise` to "clients": what changes, and what does not?
# 4. Double `width`: by how much do the bytes per round and the encryption time grow?

# %% tags=["hide-input"]
record.add_metrics(
    parameters=size,
    runs=rows.astype({"ε": str}).round(4).to_dict("records"),
    costs_per_round=per_round.round(5).reset_index().to_dict("records"),
    sweep=fits.round(8).to_dict("records"),
    expansion=float(sweep["expansion"].median()),
    max_sweep_error=float(sweep["max_error"].max()),
    privacy=table.round(4).to_dict("records"),
    attack_hits=int(attack["hit"].sum()),
    attack_clients=len(attack),
    predictions_changed=sum(r.changed for r in runs),
    predictions_tested=sum(r.tested for r in runs),
    aggregation_errors=[r.aggregation_error for r in runs],
    engine=P["engine"],
)
saved = record.save(P["results_path"])
print(timing_text(saved["timings_s"]))
