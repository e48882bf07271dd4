"""Chapter 5's federation on Flower's deployment engine (a SuperLink and SuperNodes as OS
processes) gives what the in-process engine gives."""
import numpy as np
import pytest

from ai4m_helpers.federated import crypto
from ai4m_helpers.federated.apps import FedSetting, cipher_pieces, run_in_process
from ai4m_helpers.federated.deployment import BIN, missing_executables, run_deployment
from ai4m_helpers.federated.models import SoundNet, count_parameters, flatten


def test_deployment_engine_gives_the_in_process_result(tmp_path):
    missing = missing_executables()
    if missing:
        reason = f"Flower's deployment executables are missing from {BIN}: {', '.join(missing)}"
        print(reason)
        pytest.skip(reason)
    # About 45 s, most of it Flower's polling (every 3 s on both sides of the SuperLink) and
    # the start of a process per ClientApp task. The run is encrypted: the clients read their
    # key from the node config, the server its public context from the run config.
    keys = crypto.Keys.generate()
    setting = FedSetting(clients=2, rounds=2, train_per_class=10, test_per_class=5, encrypted=True)
    arrays, result = run_deployment(setting, tmp_path / "deployment", keys, timeout=150)
    reference, _ = run_in_process(FedSetting(clients=2, rounds=2, train_per_class=10, test_per_class=5),
                                  tmp_path / "in-process")

    assert (tmp_path / "deployment" / "result" / "result.json").exists()
    assert sorted(result["evaluate"]) == ["1", "2"]
    # The clients' training is deterministic per seed: the encrypted deployment reaches the
    # plaintext in-process weights, up to CKKS's rounding.
    size = count_parameters(SoundNet())
    weights = crypto.decrypt(crypto.load_context(keys.secret), cipher_pieces(arrays))[:size]
    assert np.allclose(weights, flatten(reference.to_numpy_ndarrays()), atol=1e-4)
