"""Chapter 5's experiment: the same federation with plaintext and with CKKS-encrypted
aggregation, DP-FedAvg at several noise levels, what the server can learn from a plaintext update,
and the cost of encryption against the number of parameters.

One replicate is one seed: new clips, a new non-IID split, new initial weights, new keys, new
noise. Within a seed every federation starts from the same weights and sees the same clips in
the same order, so a difference between plaintext and encrypted runs can only come from CKKS.
"""
from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import TYPE_CHECKING

import numpy as np

from .. import claims as C
from . import apps, crypto, privacy
from .models import SoundNet, count_parameters, flatten, get_weights, set_weights, unflatten
from .params import CKKS_SETTINGS

if TYPE_CHECKING:
    import pandas as pd

PLAIN, ENCRYPTED, CLIPPED = "FedAvg", "FedAvg, encrypted", "DP-FedAvg, z = 0 (clipping only)"
PREDICTIONS_MARGIN = 0.01      # claim 1: encryption may change at most 1 % of test predictions
AGGREGATION_ERROR = 1e-6       # claim 1: one encrypted aggregation within 1e-6 of the plaintext one
LINEAR = (0.8, 1.25)           # claim 2: marginal cost per parameter, upper / lower half of the sizes
SURFACE_CLASSES = 4


def ckks_setting(P: dict) -> crypto.CKKSSetting:
    ring, moduli, scale = CKKS_SETTINGS[P["ckks"]]
    return crypto.CKKSSetting(ring, moduli, scale)


def fed_setting(P: dict, seed: int, **changes) -> apps.FedSetting:
    return apps.FedSetting(seed=seed, clients=P["clients"], train_per_class=P["train_per_class"],
                           test_per_class=P["test_per_class"], alpha=P["alpha"], width=P["width"],
                           rounds=P["rounds"], local_epochs=P["local_epochs"], lr=P["lr"],
                           batch=P["batch"], **changes)


def dp_label(eps: float) -> str:
    return f"DP-FedAvg, ε = {eps:g}"


def noise_multiplier(P: dict, eps: float) -> float:
    """z whose ε after ``rounds`` rounds with every client (q = 1) is ``eps`` (Opacus' RDP)."""
    return privacy.noise_for(eps, P["rounds"], 1.0, P["delta"])


@dataclasses.dataclass
class Federation:
    label: str
    setting: apps.FedSetting
    weights: np.ndarray           # the final global weights, decrypted by a key holder if need be
    result: dict
    wall_s: float


def federate(label: str, setting: apps.FedSetting, workdir: pathlib.Path, keys: crypto.Keys | None,
             engine: str = "in-process") -> Federation:
    """Run one federation; the clock runs around everything it needs (its data, its rounds)."""
    run = apps.run_in_process if engine == "in-process" else apps.run_simulation
    start = time.perf_counter()
    folder = pathlib.Path(workdir) / str(setting.seed) / label.replace(" ", "_").replace(",", "")
    arrays, result = run(setting, folder, keys)
    wall = time.perf_counter() - start
    size = count_parameters(SoundNet(width=setting.width))
    if apps.is_cipher(arrays):
        weights = crypto.decrypt(crypto.load_context(keys.secret), apps.cipher_pieces(arrays))[:size]
    else:
        weights = flatten(arrays.to_numpy_ndarrays())
    return Federation(label, setting, weights, result, wall)


def predictions(fed: Federation) -> np.ndarray:
    model = SoundNet(width=fed.setting.width)
    set_weights(model, unflatten(fed.weights, get_weights(model)))
    x, _ = apps._test_data(fed.setting.design())
    import torch

    with torch.no_grad():
        return model.eval()(torch.as_tensor(x)).argmax(1).numpy()


def final_accuracy(fed: Federation) -> float:
    return float(fed.result["evaluate"][str(fed.setting.rounds)]["test_accuracy"])


@dataclasses.dataclass
class SeedRun:
    seed: int
    runs: list[dict]              # one row per federation
    curves: list[dict]            # test accuracy per round
    costs: list[dict]             # per round: the phases' times and bytes, plaintext and encrypted
    attack: list[dict]            # per client: its true majority surface and the server's guess
    changed: int                  # test predictions that differ between plaintext and encrypted
    tested: int
    drift: float                  # largest |w_encrypted - w_plain| after the last round
    aggregation_error: float      # one real round: largest |Dec(encrypted sum) - plaintext sum|


def run_seed(P: dict, seed: int, workdir: pathlib.Path) -> SeedRun:
    keys = crypto.Keys.generate(ckks_setting(P))
    feds = [federate(PLAIN, fed_setting(P, seed), workdir, None, P["engine"]),
            federate(ENCRYPTED, fed_setting(P, seed, encrypted=True), workdir, keys, P["engine"]),
            federate(CLIPPED, fed_setting(P, seed, clip=P["clip"], encrypted=P["dp_encrypted"]), workdir, keys,
                     P["engine"])]
    for eps in P["epsilons"]:
        dp = fed_setting(P, seed, clip=P["clip"], noise_multiplier=noise_multiplier(P, eps),
                         encrypted=P["dp_encrypted"], client_noise=P["dp_noise"] == "clients")
        feds.append(federate(dp_label(eps), dp, workdir, keys, P["engine"]))
    plain, encrypted = feds[0], feds[1]
    a, b = predictions(plain), predictions(encrypted)
    return SeedRun(seed, [_run_row(f, P, seed) for f in feds], _curves(feds, seed), _costs(plain, encrypted, seed),
                   label_attack(P, seed, workdir), int((a != b).sum()), len(a),
                   float(np.abs(plain.weights - encrypted.weights).max()),
                   aggregation_error(P, seed, workdir, keys))


def _client_rows(fed: Federation) -> list[dict]:
    return [row for rows in fed.result.get("clients", {}).values() for row in rows]


def _run_row(fed: Federation, P: dict, seed: int) -> dict:
    s = fed.setting
    z = s.noise_multiplier
    eps = privacy.epsilon(z, s.rounds, 1.0, P["delta"]) if s.private and z > 0 else np.inf
    norms = np.asarray([c["update_norm"] for c in _client_rows(fed)])
    return {"seed": seed, "run": fed.label, "encrypted": s.encrypted, "z": z if s.private else np.nan,
            "ε": eps, "accuracy": final_accuracy(fed), "wall_s": fed.wall_s,
            "clipped share": float(np.mean(norms > s.clip)) if s.private and len(norms) else np.nan}


def _curves(feds: list[Federation], seed: int) -> list[dict]:
    return [{"seed": seed, "run": f.label, "round": int(r), "accuracy": m["test_accuracy"]}
            for f in feds for r, m in f.result["evaluate"].items()]


def _costs(plain: Federation, encrypted: Federation, seed: int) -> list[dict]:
    """Per round: the clients' mean time per phase (from their own logs), the server's
    aggregation and the bytes one client sends."""
    rows = []
    for fed in (plain, encrypted):
        by_round: dict = {}
        for row in _client_rows(fed):
            by_round.setdefault(row["round"], []).append(row)
        for r in fed.result["rounds"]:
            clients = by_round[r["round"]]
            rows.append({"seed": seed, "run": fed.label, "round": r["round"],
                         "train_s": np.mean([c["train_s"] for c in clients]),
                         "encrypt_s": np.mean([c.get("encrypt_s", 0.0) for c in clients]),
                         "aggregate_s": r["aggregate_s"],
                         "decrypt_s": np.mean([c.get("decrypt_s", 0.0) for c in clients]),
                         "bytes_up": np.mean(r["bytes_received"])})
    return rows


# -- what the server sees ---------------------------------------------------------------------
def first_round_replies(setting: apps.FedSetting, workdir: pathlib.Path, keys=None):
    """The first round as the server receives it: the initial weights it sent and each client's
    reply (partition id → its ArrayRecord)."""
    import torch
    from flwr.app import ArrayRecord, ConfigRecord

    run_config, node_config = apps.run_files(setting, workdir, keys)
    grid = apps.LocalGrid(apps.client_app, [{**node_config, "partition-id": k, "num-partitions": setting.clients}
                                            for k in range(setting.clients)], run_config)
    apps._as_server_task(grid.run.run_id)
    strategy = apps.SecureFedAvg(setting, keys.public if setting.encrypted else None)
    torch.manual_seed(setting.seed)
    initial = ArrayRecord(get_weights(SoundNet(width=setting.width)))
    replies = grid.send_and_receive(strategy.configure_train(1, initial, ConfigRecord(setting.to_config()), grid))
    partition = {node: k for k, node in enumerate(grid.get_node_ids())}
    return initial, {partition[m.metadata.src_node_id]: m.content["arrays"] for m in replies}


def aggregation_error(P: dict, seed: int, workdir: pathlib.Path, keys: crypto.Keys) -> float:
    """The first round of the encrypted federation, aggregated by the server on ciphertexts and
    decrypted, against the plaintext weighted mean of the same client weights (which a key holder
    reads by decrypting each client's ciphertext): the largest difference."""
    setting = fed_setting(P, seed, encrypted=True)
    _, replies = first_round_replies(setting, pathlib.Path(workdir) / "aggregation", keys)
    client = crypto.load_context(keys.secret)
    size = count_parameters(SoundNet(width=setting.width))
    weights = [crypto.decrypt(client, apps.cipher_pieces(replies[k]))[:size] for k in sorted(replies)]
    counts = np.array([len(part) for part in setting.design().partitions()], float)
    shares = counts / counts.sum()
    strategy = apps.SecureFedAvg(setting, keys.public)
    total = strategy._aggregate([replies[k] for k in sorted(replies)], shares, 0.0)
    encrypted = crypto.decrypt(client, apps.cipher_pieces(total))[:size]
    return float(np.abs(encrypted - shares @ np.stack(weights)).max())


def label_attack(P: dict, seed: int, workdir: pathlib.Path) -> list[dict]:
    """An honest-but-curious server's guess of each client's most frequent surface from its
    plaintext first-round update: local training raises the output bias of the classes the
    client has seen most, so the surface whose bias rose most is the guess."""
    setting = fed_setting(P, seed)
    initial, replies = first_round_replies(setting, pathlib.Path(workdir) / "attack")
    bias0 = initial.to_numpy_ndarrays()[-1]
    labels, parts = setting.design().labels(), setting.design().partitions()
    rows = []
    for k, arrays in sorted(replies.items()):
        rise = arrays.to_numpy_ndarrays()[-1] - bias0
        counts = np.bincount(labels[parts[k]], minlength=SURFACE_CLASSES)
        rows.append({"seed": seed, "client": k, "clips": int(counts.sum()), "majority": int(counts.argmax()),
                     "share of majority": float(counts.max() / counts.sum()), "guess": int(rise.argmax()),
                     "hit": bool(rise.argmax() == counts.argmax())})
    return rows


def byte_frequencies(blob: bytes) -> np.ndarray:
    raw = np.frombuffer(blob, dtype=np.uint8)
    return np.bincount(raw, minlength=256) / raw.size


def ciphertext_view(P: dict, seed: int, workdir: pathlib.Path) -> dict:
    """What the server holds of one client under encryption, and what it cannot do with it:
    decrypt it, recognise the same weights encrypted twice, or tell its bytes from those of a
    ciphertext of zeros (the bytes are not uniform: they store numbers modulo primes below 2⁶⁰
    in 64-bit words, compressed; that structure is the encoding's, whatever the weights)."""
    keys = crypto.Keys.generate(ckks_setting(P))
    setting = fed_setting(P, seed, encrypted=True)
    _, replies = first_round_replies(setting, pathlib.Path(workdir) / "attack-encrypted", keys)
    pieces = apps.cipher_pieces(replies[0])
    try:
        crypto.decrypt(crypto.load_context(keys.public), pieces)
        refused = ""
    except PermissionError as err:
        refused = str(err)
    client = crypto.load_context(keys.secret)
    weights = crypto.decrypt(client, pieces)
    again = crypto.encrypt(client, weights)
    zeros = crypto.encrypt(client, np.zeros(len(weights)))
    ours, theirs = byte_frequencies(pieces[0]), byte_frequencies(zeros[0])
    return {"decryption by the server": refused or "succeeded (it should not)",
            "same weights encrypted again give the same bytes": pieces[0] == again[0],
            "largest difference of byte frequencies, client's weights vs zeros": float(np.abs(ours - theirs).max()),
            "byte frequencies": {"a client's weights": ours, "zeros": theirs}}


# -- costs against the number of parameters -------------------------------------------------
def cost_sweep(P: dict, seed: int) -> pd.DataFrame:
    """Encryption, aggregation, decryption, bytes and memory for weight vectors of 1, 2, 4...
    full ciphertexts, ``sweep_repeats`` times (each repeat with new keys and vectors)."""
    import pandas as pd

    setting = ckks_setting(P)
    rows = []
    # A warm-up at the largest size first: the first allocations of a process cost extra.
    crypto.measure_costs(max(P["sweep_ciphertexts"]) * setting.slots, P["sweep_clients"], crypto.Keys.generate(setting),
                         seed, runs=1)
    for repeat in range(P["sweep_repeats"]):
        keys = crypto.Keys.generate(setting)
        for n in P["sweep_ciphertexts"]:
            rows.append({"repeat": repeat, **crypto.measure_costs(n * setting.slots, P["sweep_clients"], keys,
                                                                  seed + repeat)})
    return pd.DataFrame(rows)


COST_MEASURES = {"encrypt_s": "encryption (one client)", "aggregate_s": "aggregation (server)",
                 "memory_bytes": "memory (server: all clients' ciphertexts, received and parsed)"}


def marginal_ratio(sizes: np.ndarray, costs: np.ndarray) -> float:
    """The marginal cost per parameter over the upper half of the sizes divided by that over the
    lower half (the halves share the middle size): 1 for linear growth, fixed overheads included;
    more for growth faster than linear, less for saturation. ``costs`` may hold several repeats
    (rows): their median at each size is used."""
    y = np.median(np.atleast_2d(costs), axis=0)
    mid = len(sizes) // 2
    lower = np.polyfit(sizes[:mid + 1], y[:mid + 1], 1)[0]
    upper = np.polyfit(sizes[mid:], y[mid:], 1)[0]
    return float(upper / lower) if lower > 0 else float("nan")


def slopes(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per repeat and measure: the straight-line fit's cost per parameter and R², and the
    marginal-cost ratio of :func:`marginal_ratio`."""
    import pandas as pd

    rows = []
    for repeat, part in sweep.groupby("repeat"):
        part = part.sort_values("parameters")
        p = part["parameters"].to_numpy(float)
        for measure in (*COST_MEASURES, "bytes_per_client"):
            y = part[measure].to_numpy(float)
            b, a = np.polyfit(p, y, 1)
            r2 = 1 - np.sum((y - (a + b * p)) ** 2) / np.sum((y - y.mean()) ** 2)
            rows.append({"repeat": repeat, "measure": measure, "per parameter": b, "intercept": a, "R²": r2,
                         "upper / lower marginal cost": marginal_ratio(p, y)})
    return pd.DataFrame(rows)


# -- tables ---------------------------------------------------------------------------------
def frame(runs: list[SeedRun], field: str) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([row for run in runs for row in getattr(run, field)])


def privacy_table(P: dict) -> pd.DataFrame:
    """The noise multiplier z of each target ε after ``rounds`` rounds with every client in every
    round (q = 1), σ on the average, and ε recomputed from z by Opacus' RDP accountant, by
    dp-accounting's RDP accountant (other code, the same bound) and by its PLD accountant (tight)."""
    import pandas as pd

    rows = []
    for eps in P["epsilons"]:
        z = noise_multiplier(P, eps)
        check = privacy.epsilon_check(z, P["rounds"], 1.0, P["delta"])
        rows.append({"target ε": eps, "z": z, "σ on the average": privacy.noise_std(z, P["clip"], P["clients"]),
                     "ε (Opacus RDP)": privacy.epsilon(z, P["rounds"], 1.0, P["delta"]),
                     "ε (dp-accounting RDP)": check["rdp"], "ε (dp-accounting PLD)": check["pld"]})
    return pd.DataFrame(rows)


# -- claims ---------------------------------------------------------------------------------
def _exact(name: str, value: float, n: int, unit: str, direction: str, margin: float) -> C.Claim:
    """A check without sampling noise: the value is its own interval."""
    return C.decide(name, C.Estimate(value, (value, value), n, unit, "exact (deterministic)"),
                    direction=direction, margin=margin)


def equivalence_claim(runs: list[SeedRun]) -> C.Claim:
    changed, tested = sum(r.changed for r in runs), sum(r.tested for r in runs)
    rows = frame(runs, "runs")
    acc = {label: rows[rows["run"] == label].sort_values("seed")["accuracy"].to_numpy() for label in (PLAIN, ENCRYPTED)}
    parts = {
        "one aggregation": _exact("largest error of an encrypted weighted sum (first round, every seed)",
                                  max(r.aggregation_error for r in runs), len(runs), "seed", "less",
                                  AGGREGATION_ERROR),
        "test predictions": C.decide("share of test predictions that encryption changes (pooled over seeds)",
                                     C.proportion(changed, tested, "test clip"), direction="less",
                                     margin=PREDICTIONS_MARGIN,
                                     evidence={"accuracy difference (encrypted - plain)":
                                               float(np.mean(acc[ENCRYPTED] - acc[PLAIN])),
                                               "largest weight difference after training":
                                               max(r.drift for r in runs)}),
    }
    return C.combine("encrypted aggregation matches plaintext FedAvg", parts, rule="all")


TIME_MEASURES = ("encrypt_s", "aggregate_s")


def linearity_claim(sweep: pd.DataFrame, seed: int = 0) -> C.Claim:
    """Per time measure, the marginal-cost ratio of the per-size medians over the repeats, with a
    percentile-bootstrap interval over repeats (one repeat disturbed by other work on the
    machine moves a median little)."""
    sizes = np.sort(sweep["parameters"].unique()).astype(float)
    parts = {}
    for measure in TIME_MEASURES:
        name = COST_MEASURES[measure]
        matrix = sweep.pivot(index="repeat", columns="parameters", values=measure)[sizes].to_numpy(float)
        est = C.bootstrap(lambda idx, m=matrix: marginal_ratio(sizes, m[idx.astype(int)]),
                          [np.arange(len(matrix))], unit="repeat", resamples=2000, seed=seed)
        label = f"marginal time per parameter of {name}, upper / lower half of the sizes"
        parts[f"{name}: ratio > {LINEAR[0]}"] = C.decide(label, est, direction="greater", margin=LINEAR[0])
        parts[f"{name}: ratio < {LINEAR[1]}"] = C.decide(label, est, direction="less", margin=LINEAR[1])
    return C.combine("encryption and aggregation time grow linearly with the number of parameters", parts,
                     rule="all")


def dp_claim(runs: list[SeedRun], P: dict) -> C.Claim:
    """Against DP-FedAvg with the same clipping and weights but no noise, so that only the noise
    differs: accuracy is lost at the strictest ε, and less of it at the loosest."""
    rows = frame(runs, "runs").sort_values("seed")

    def accuracy(label):
        return rows[rows["run"] == label]["accuracy"].to_numpy()

    strict, loose = dp_label(min(P["epsilons"])), dp_label(max(P["epsilons"]))
    parts = {"cost at the strictest ε": C.decide(
        f"accuracy lost to the noise at {strict} (δ = {P['delta']:g}), against clipping only",
        C.paired(accuracy(strict), accuracy(CLIPPED)), direction="greater", margin=0.0)}
    if len(P["epsilons"]) > 1:
        parts["graded"] = C.decide(f"accuracy at {loose} above {strict}", C.paired(accuracy(strict), accuracy(loose)),
                                   direction="greater", margin=0.0)
    return C.combine("DP-FedAvg trades accuracy for a stated (ε, δ)", parts, rule="all")


def attack_claim(runs: list[SeedRun]) -> C.Claim:
    rows = frame(runs, "attack")
    return C.decide("a plaintext first-round update gives away the client's most frequent surface",
                    C.proportion(int(rows["hit"].sum()), len(rows), "client"), direction="greater",
                    margin=1 / SURFACE_CLASSES,
                    evidence={"chance": 1 / SURFACE_CLASSES,
                              "mean share of a client's most frequent surface": float(rows["share of majority"].mean())})


def decide_claims(runs: list[SeedRun], sweep: pd.DataFrame, P: dict) -> list[C.Claim]:
    return [equivalence_claim(runs), linearity_claim(sweep, P["seed"]), dp_claim(runs, P), attack_claim(runs)]
