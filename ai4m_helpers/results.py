"""The results record: one JSON per chapter run, written only by a real run.

A notebook builds a :class:`ResultsRecord`, times its phases with :meth:`ResultsRecord.phase`,
adds metrics and claims, and saves it. The runner reads these records back to make the summary.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import json
import math
import pathlib
import platform
import time
from typing import Any, Iterator, Mapping

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("chapter", "profile", "parameters", "seed", "device", "versions", "timings_s",
                 "metrics", "claims")
# Packages whose versions are worth recording when they are installed.
TRACKED_PACKAGES = ("ai4m-helpers", "torch", "numpy", "scikit-learn", "adversarial-robustness-toolbox",
                    "captum", "transformers", "aif360", "opacus", "torch-geometric", "papermill")


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def _jsonable(value: Any) -> Any:
    """Turn numpy / torch scalars and arrays into plain JSON values; NaN becomes null."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ResultsRecord:
    """Collects what one chapter run measured, and writes it as JSON."""

    def __init__(self, chapter: str, parameters: Mapping[str, Any], device: str):
        self.data: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "chapter": chapter,
            "profile": parameters.get("profile"),
            "parameters": _jsonable(dict(parameters)),
            "seed": parameters.get("seed"),
            "device": device,
            "versions": package_versions(),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "timings_s": {},
            "metrics": {},
            "claims": [],
        }
        self._t0 = time.perf_counter()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a block; repeated phases of the same name add up."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            timings = self.data["timings_s"]
            timings[name] = round(timings.get(name, 0.0) + elapsed, 3)

    def add_metrics(self, **metrics: Any) -> None:
        self.data["metrics"].update(_jsonable(metrics))

    def add_claim(self, name: str, held: bool, evidence: Mapping[str, Any], note: str = "") -> dict:
        claim = {"name": name, "held": bool(held), "evidence": _jsonable(dict(evidence))}
        if note:
            claim["note"] = note
        self.data["claims"].append(claim)
        return claim

    def finish(self) -> dict[str, Any]:
        self.data["timings_s"]["total"] = round(time.perf_counter() - self._t0, 3)
        return self.data

    def save(self, path: str | pathlib.Path | None) -> dict[str, Any]:
        """Finish and write to ``path`` (nothing is written when it is empty)."""
        data = self.finish()
        validate_record(data)
        if path:
            path = pathlib.Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        return data


def validate_record(data: Mapping[str, Any]) -> None:
    """Raise ValueError if a record misses a required field or has malformed claims."""
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"results record lacks {missing}")
    if not isinstance(data["timings_s"], Mapping) or "total" not in data["timings_s"]:
        raise ValueError("results record has no total time")
    for claim in data["claims"]:
        if set(claim) < {"name", "held", "evidence"} or not isinstance(claim["held"], bool):
            raise ValueError(f"malformed claim {claim!r}")


def load_record(path: str | pathlib.Path) -> dict[str, Any]:
    data = json.loads(pathlib.Path(path).read_text())
    validate_record(data)
    return data
