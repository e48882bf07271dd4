import json

import numpy as np
import pytest

from ai4m_helpers import claims as C
from ai4m_helpers.results import ResultsRecord, load_record, validate_record


def make_record():
    return ResultsRecord("99", {"profile": "smoke", "seed": 3, "epochs": 2}, "cpu: test")


def test_record_has_the_schema_and_round_trips(tmp_path):
    rec = make_record()
    with rec.phase("train"):
        pass
    with rec.phase("train"):  # repeated phases add up
        pass
    rec.add_metrics(acc=np.float32(0.5), curve=np.arange(3), missing=float("nan"))
    rec.add_claim(C.decide("something holds", C.mean_ci(np.array([0.2, 0.3])), direction="greater",
                           margin=0.0, evidence={"a": np.float64(0.25)}))
    path = tmp_path / "sub" / "r.json"
    data = rec.save(path)
    loaded = load_record(path)
    assert loaded == json.loads(json.dumps(data))
    for key in ("chapter", "profile", "parameters", "seed", "device", "versions", "timings_s",
                "metrics", "claims"):
        assert key in loaded
    assert loaded["seed"] == 3 and loaded["profile"] == "smoke"
    assert set(loaded["timings_s"]) == {"train", "total"}
    assert loaded["metrics"] == {"acc": 0.5, "curve": [0, 1, 2], "missing": None}
    (claim,) = loaded["claims"]
    assert claim["name"] == "something holds" and claim["evidence"] == {"a": 0.25}
    assert claim["verdict"] == "inconclusive" and claim["held"] is False
    assert claim["effect"] == pytest.approx(0.25) and claim["n"] == 2 and claim["unit"] == "seed"
    assert "torch" in loaded["versions"] and "python" in loaded["versions"]


def test_empty_path_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)        # a stray write would land here
    data = make_record().save("")
    assert data["timings_s"]["total"] >= 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("broken", [
    {"chapter": "01"},
    {"chapter": "01", "profile": "smoke", "parameters": {}, "seed": 0, "device": "cpu", "versions": {},
     "timings_s": {}, "metrics": {}, "claims": []},
    {"chapter": "01", "profile": "smoke", "parameters": {}, "seed": 0, "device": "cpu", "versions": {},
     "timings_s": {"total": 1}, "metrics": {}, "claims": [{"name": "x", "held": "yes", "evidence": {}}]},
    {"chapter": "01", "profile": "smoke", "parameters": {}, "seed": 0, "device": "cpu", "versions": {},
     "timings_s": {"total": 1}, "metrics": {},
     "claims": [{"name": "x", "verdict": "probably", "held": False, "effect": 0.1, "ci": None, "n": 1,
                 "unit": "seed", "margin": 0.0, "evidence": {}}]},
])
def test_incomplete_records_are_rejected(broken):
    with pytest.raises(ValueError):
        validate_record(broken)


def test_a_record_names_the_code_that_made_it():
    import re

    from ai4m_helpers.results import code_version, package_versions

    code = code_version()
    assert code is None or re.fullmatch(r"[0-9a-f]{7,40}(\+changes)?", code)
    assert package_versions().get("code") == code
