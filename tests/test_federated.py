"""Chapter 5's helpers: CKKS aggregation against plaintext, what the server's context cannot do,
clipping and σ against Flower's own helpers, ε against dp-accounting, the strategy against
Flower's FedAvg, the generator, the loader and the engines."""
import logging
import math

import numpy as np
import pytest

pytest.importorskip("tenseal")
pytest.importorskip("flwr")

from ai4m_helpers.federated import apps, crypto, data, experiment as ex, privacy  # noqa: E402
from ai4m_helpers.federated.models import SoundNet, count_parameters, flatten, get_weights, unflatten  # noqa: E402
from ai4m_helpers.federated.params import PARAMS  # noqa: E402
from ai4m_helpers.params import ParameterError  # noqa: E402

logging.getLogger("flwr").setLevel(logging.WARNING)
TINY = dict(clients=2, rounds=2, train_per_class=10, test_per_class=5, seed=3)


@pytest.fixture(scope="module")
def keys():
    return crypto.Keys.generate()


def test_an_encrypted_weighted_sum_equals_the_plaintext_one(keys):
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 0.5, (3, 5000))            # two ciphertexts each
    weights = [0.2, 0.3, 0.5]
    client = crypto.load_context(keys.secret)
    blobs = [crypto.encrypt(client, v) for v in vectors]
    assert all(len(b) == 2 for b in blobs)
    total = crypto.weighted_sum(crypto.load_context(keys.public), blobs, weights)
    np.testing.assert_allclose(crypto.decrypt(client, total)[:5000], np.dot(weights, vectors), atol=1e-6)
    noise = rng.normal(0, 1, 5000)
    noisy = crypto.weighted_sum(crypto.load_context(keys.public), blobs, weights, noise)
    np.testing.assert_allclose(crypto.decrypt(client, noisy)[:5000], np.dot(weights, vectors) + noise, atol=1e-6)


def test_the_servers_context_cannot_decrypt_and_encryption_is_randomised(keys):
    import tenseal as ts

    server, client = crypto.load_context(keys.public), crypto.load_context(keys.secret)
    blob = crypto.encrypt(client, np.ones(10))
    with pytest.raises(PermissionError):
        crypto.decrypt(server, blob)
    with pytest.raises(ValueError):                   # TenSEAL itself refuses too
        ts.ckks_vector_from(server, blob[0]).decrypt()
    assert crypto.encrypt(client, np.ones(10))[0] != blob[0]
    assert len(keys.public) < len(keys.secret) + 2_000_000   # no Galois keys in the public context


def test_clipping_and_sigma_agree_with_flowers_helpers():
    from flwr.supercore.differential_privacy import compute_clip_model_update, compute_stdv

    rng = np.random.default_rng(1)
    reference, weights = rng.normal(size=50), rng.normal(size=50) * 3
    clipped, norm = privacy.clip_update(weights, reference, 0.5)
    assert norm == pytest.approx(np.linalg.norm(weights - reference))
    assert np.linalg.norm(clipped - reference) == pytest.approx(0.5)
    theirs = [weights.copy()]
    compute_clip_model_update(theirs, [reference.copy()], 0.5)
    np.testing.assert_allclose(clipped, theirs[0])
    small = reference + 1e-3
    assert np.allclose(privacy.clip_update(small, reference, 0.5)[0], small)       # inside the ball: unchanged
    same, bad = privacy.clip_update(reference + np.nan, reference, 0.5)
    assert math.isnan(bad) and np.array_equal(same, reference)                      # a diverged update is dropped
    assert privacy.noise_std(1.3, 0.7, 9) == pytest.approx(compute_stdv(1.3, 0.7, 9))


@pytest.mark.parametrize("z,rounds,q", [(0.5, 10, 1.0), (1.0, 30, 1.0), (2.0, 5, 1.0), (1.1, 100, 0.1)])
def test_epsilon_by_opacus_matches_dp_accounting(z, rounds, q):
    eps = privacy.epsilon(z, rounds, q, 1e-5)
    check = privacy.epsilon_check(z, rounds, q, 1e-5)
    assert math.isfinite(eps) and eps == pytest.approx(check["rdp"], rel=1e-3)
    assert check["pld"] <= eps * 1.001                  # the PLD accountant is tight, RDP an upper bound
    assert privacy.epsilon(0.0, rounds, q, 1e-5) == math.inf


def test_finite_epsilon_needs_noise_and_the_root_search_finds_it():
    z = privacy.noise_for(8.0, 15, 1.0, 1e-5)
    assert z > 0 and privacy.epsilon(z, 15, 1.0, 1e-5) == pytest.approx(8.0, rel=1e-4)
    assert privacy.noise_for(4.0, 15, 1.0, 1e-5) > z
    with pytest.raises(ValueError):
        privacy.noise_for(math.inf, 15, 1.0, 1e-5)


def test_plaintext_aggregation_is_flowers_fedavg():
    from flwr.app import ArrayRecord, MetricRecord, RecordDict
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    setting = apps.FedSetting(**TINY)
    rng = np.random.default_rng(2)
    template = get_weights(SoundNet(width=setting.width))
    contents = [RecordDict({"arrays": ArrayRecord([rng.normal(size=w.shape).astype(w.dtype) for w in template]),
                            "metrics": MetricRecord({"num-examples": n})}) for n in (3, 9)]
    ours = apps.SecureFedAvg(setting)._aggregate([c["arrays"] for c in contents], np.array([0.25, 0.75]), 0.0)
    theirs = aggregate_arrayrecords(contents, "num-examples")
    np.testing.assert_allclose(flatten(ours.to_numpy_ndarrays()), flatten(theirs.to_numpy_ndarrays()), atol=1e-6)


def test_an_encrypted_federation_learns_the_plaintext_model_and_new_keys_are_used(tmp_path):
    plain_arrays, plain = apps.run_in_process(apps.FedSetting(**TINY), tmp_path / "plain")
    w_plain = flatten(plain_arrays.to_numpy_ndarrays())
    size = count_parameters(SoundNet())
    for attempt in range(2):     # the same folder with new keys: a cached old key would break decryption
        keys = crypto.Keys.generate()
        arrays, result = apps.run_in_process(apps.FedSetting(**TINY, encrypted=True), tmp_path / "enc", keys)
        assert apps.is_cipher(arrays)
        w = crypto.decrypt(crypto.load_context(keys.secret), apps.cipher_pieces(arrays))[:size]
        np.testing.assert_allclose(w, w_plain, atol=1e-4)
    assert result["evaluate"]["2"]["test_accuracy"] == plain["evaluate"]["2"]["test_accuracy"]
    assert result["clients"][0][1]["decrypt_s"] > 0 and result["wire_bytes"] > 0


def test_the_server_receives_ciphertexts_and_counts_only(tmp_path):
    keys = crypto.Keys.generate()
    setting = apps.FedSetting(**TINY, encrypted=True, clip=0.5, noise_multiplier=1.0)
    _, replies = ex.first_round_replies(setting, tmp_path, keys)
    for arrays in replies.values():
        assert apps.is_cipher(arrays) and all(k.startswith(apps.CIPHER_PREFIX) for k in arrays)
    _, result = apps.run_in_process(setting, tmp_path / "run", keys)
    assert set(result["rounds"][0]) == {"round", "aggregate_s", "sigma", "bytes_received", "bytes_sent"}
    assert {"update_norm", "train_loss"} <= set(result["clients"][0][0])      # kept by the client


def test_dp_federation_adds_noise_of_the_stated_size(tmp_path):
    setting = apps.FedSetting(**TINY, clip=0.5, noise_multiplier=2.0)
    _, result = apps.run_in_process(setting, tmp_path)
    assert all(r["sigma"] == pytest.approx(2.0 * 0.5 / 2) for r in result["rounds"])
    assert apps.run_in_process(apps.FedSetting(**TINY, clip=0.5), tmp_path / "z0")[1]["rounds"][0]["sigma"] == 0


def test_distributed_noise_adds_up_to_the_central_noise():
    setting = apps.FedSetting(**{**TINY, "clients": 8}, clip=0.5, noise_multiplier=2.0, client_noise=True)
    shares = np.stack([apps._client_noise(setting, k, 1) for k in range(8)])
    average = shares.mean(axis=0)                        # the server's 1/m average of the clients' noise
    assert average.std() == pytest.approx(privacy.noise_std(2.0, 0.5, 8), rel=0.05)


def test_dp_aggregation_divides_by_the_clients_sampled_not_the_replies():
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    setting = apps.FedSetting(**{**TINY, "clients": 4}, clip=1.0)
    apps._as_server_task(1)                              # messages are made by the server
    template = get_weights(SoundNet(width=setting.width))
    strategy = apps.SecureFedAvg(setting)
    ones = [np.ones_like(w) for w in template]
    replies = [Message(RecordDict({"arrays": ArrayRecord(ones), "metrics": MetricRecord({"num-examples": 5})}),
                       dst_node_id=1, message_type="train") for _ in range(3)]   # one client dropped out
    strategy._check_and_log_replies = lambda r, is_train: (list(r), [])
    arrays, _ = strategy.aggregate_train(1, replies)
    assert np.allclose(flatten(arrays.to_numpy_ndarrays()), 0.75)


def test_the_simulation_engine_runs_the_same_apps(tmp_path):
    pytest.importorskip("ray")
    arrays, result = apps.run_simulation(apps.FedSetting(**TINY), tmp_path / "sim")
    reference, _ = apps.run_in_process(apps.FedSetting(**TINY), tmp_path / "local")
    np.testing.assert_allclose(flatten(arrays.to_numpy_ndarrays()), flatten(reference.to_numpy_ndarrays()), atol=1e-6)
    assert set(result["evaluate"]) == {"1", "2"}


# -- data ---------------------------------------------------------------------------------------
def test_clips_are_reproducible_and_the_split_is_a_partition():
    a, b = data.clip(5, 17, 2), data.clip(5, 17, 2)
    assert a.shape == (4000,) and np.array_equal(a, b) and not np.array_equal(a, data.clip(5, 18, 2))
    design = data.Design(seed=1, train_per_class=30, test_per_class=5, clients=5, alpha=0.3)
    parts = design.partitions()
    assert sorted(np.concatenate(parts).tolist()) == list(range(design.n_train))
    assert min(len(p) for p in parts) >= 2
    x, y = design.client_features(0)
    assert x.shape == (len(parts[0]), data.MELS, 30) and np.isfinite(x).all()
    assert np.array_equal(y, design.labels()[parts[0]])


def test_small_alpha_makes_clients_hear_few_surfaces():
    labels = data.labels_for(0, 2000)

    def top_share(alpha):
        parts = data.dirichlet_split(labels, 10, alpha, seed=0)
        return np.mean([np.bincount(labels[p], minlength=4).max() / len(p) for p in parts])

    assert top_share(0.1) > 0.8 > top_share(100.0)


def test_mel_filterbank_covers_the_spectrum():
    fb = data.mel_filterbank()
    assert fb.shape == (data.MELS, data.FRAME // 2 + 1) and (fb >= 0).all()
    assert (fb.sum(0)[2:-2] > 0).all()                  # every inner frequency is in some band


def test_a_folder_of_wav_files_loads(tmp_path):
    from scipy.io import wavfile

    rng = np.random.default_rng(0)
    (tmp_path / "knurled").mkdir()
    (tmp_path / "smooth").mkdir()
    wavfile.write(tmp_path / "knurled" / "a.wav", 16000, (rng.normal(0, 0.1, (16000, 2)) * 32767).astype(np.int16))
    wavfile.write(tmp_path / "smooth" / "b.wav", 8000, rng.normal(0, 0.1, 2000).astype(np.float32))
    sounds, names = data.load_sound_folder(tmp_path)
    assert names == ["knurled", "smooth"] and sounds.audio.shape == (2, 4000)
    assert sounds.labels.tolist() == [0, 1] and np.abs(sounds.audio[0]).max() < 1.0
    assert (sounds.audio[1, 2000:] == 0).all()          # padded to half a second
    with pytest.raises(FileNotFoundError):
        data.load_sound_folder(tmp_path / "knurled")


def test_weights_flatten_and_come_back():
    w = get_weights(SoundNet(width=8))
    back = unflatten(flatten(w), w)
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(w, back))


# -- experiment pieces --------------------------------------------------------------------------
def test_cost_measures_grow_with_the_parameters(keys):
    small = crypto.measure_costs(4096, 2, keys, 0)
    large = crypto.measure_costs(4 * 4096, 2, keys, 0)
    assert large["ciphertexts"] == 4 and small["ciphertexts"] == 1
    assert 3.5 < large["bytes_per_client"] / small["bytes_per_client"] < 4.5
    assert 15 < small["expansion"] < 30 and small["max_error"] < 1e-6


def test_the_label_attack_reads_the_first_round(tmp_path):
    P = PARAMS.resolve(profile="smoke", clients=3, train_per_class=20, test_per_class=5, alpha=0.1)
    rows = ex.label_attack(P, 4, tmp_path)
    assert [r["client"] for r in rows] == [0, 1, 2]
    assert sum(r["clips"] for r in rows) == 80 and all(0 <= r["guess"] < 4 for r in rows)


def test_linearity_fit_reads_a_linear_and_a_quadratic_cost():
    import pandas as pd

    p = np.array([1, 2, 4, 8, 16]) * 4096.0
    jitter = np.random.default_rng(0).normal(1, 0.01, (3, 5, 4))     # 1 % timing noise per measurement
    sweep = pd.DataFrame([{"repeat": r, "parameters": x, "encrypt_s": (1e-3 + 1e-6 * x) * jitter[r, i, 0],
                           "aggregate_s": 1e-12 * x * x * jitter[r, i, 1], "memory_bytes": 400 * x * jitter[r, i, 2],
                           "bytes_per_client": 80 * x} for r in range(3) for i, x in enumerate(p)])
    fits = ex.slopes(sweep).set_index("measure")
    assert fits.loc["encrypt_s", "upper / lower marginal cost"].mean() == pytest.approx(1.0, abs=0.05)
    assert fits.loc["aggregate_s", "upper / lower marginal cost"].mean() > 3
    claim = ex.linearity_claim(sweep)
    assert claim.parts["encryption (one client): ratio < 1.25"].verdict == "held"
    assert claim.parts["aggregation (server): ratio < 1.25"].verdict == "not held"
    assert claim.verdict == "not held"            # the quadratic aggregation is refused whatever the rest


@pytest.mark.parametrize("bad,message", [
    ({"epsilons": [8.0, 1.0]}, "increasing"),
    ({"dp_noise": "nobody"}, "one of"),
    ({"clients": 50, "train_per_class": 5}, "training clips"),
    ({"ckks": "2048/10"}, "one of"),
    ({"alpha": float("nan")}, "alpha"),
])
def test_bad_parameters_are_refused(bad, message):
    with pytest.raises(ParameterError, match=message):
        PARAMS.resolve(profile="smoke", **bad)
