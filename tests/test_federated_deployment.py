"""Chapter 5's federation on Flower's deployment engine (a SuperLink and SuperNodes as OS
processes) gives what the in-process engine gives."""
import numpy as np
import pytest

from ai4m_helpers.federated.apps import FedSetting, run_in_process
from ai4m_helpers.federated.deployment import BIN, missing_executables, run_deployment
from ai4m_helpers.federated.models import flatten


def test_deployment_engine_gives_the_in_process_result(tmp_path):
    missing = missing_executables()
    if missing:
        reason = f"Flower's deployment executables are missing from {BIN}: {', '.join(missing)}"
        print(reason)
        pytest.skip(reason)
    # About 45 s, most of it Flower's polling (every 3 s on both sides of the SuperLink) and
    # the start of a process per ClientApp task; an encrypted run would take as long again.
    setting = FedSetting(clients=2, rounds=2, train_per_class=10, test_per_class=5)
    arrays, result = run_deployment(setting, tmp_path / "deployment", timeout=150)
    reference, _ = run_in_process(setting, tmp_path / "in-process")

    assert (tmp_path / "deployment" / "result" / "result.json").exists()
    assert sorted(result["evaluate"]) == ["1", "2"]
    # The clients' training is deterministic per seed: both engines reach the same weights.
    assert np.allclose(flatten(arrays.to_numpy_ndarrays()), flatten(reference.to_numpy_ndarrays()), atol=1e-6)
