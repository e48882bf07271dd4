"""The results record: one JSON per chapter run, written only by a real run.

A notebook builds a :class:`ResultsRecord`, times its phases with :meth:`ResultsRecord.phase`,
adds metrics and claims (:class:`~ai4m_helpers.claims.Claim` objects), and saves it. The runner reads these records back to make the summary.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.metadata
import json
import math
import pathlib
import platform
import time
from typing import Any, Iterable, Iterator, Mapping

from .claims import VERDICTS, Claim

# 2: claims carry a three-way verdict with effect, interval, n, unit and margin.
SCHEMA_VERSION = 2
CLAIM_KEYS = ("name", "verdict", "held", "effect", "ci", "n", "unit", "margin", "evidence")
REQUIRED_KEYS = ("chapter", "profile", "parameters", "seed", "device", "versions", "timings_s",
                 "metrics", "claims")
# Packages whose versions are worth recording when they are installed.
TRACKED_PACKAGES = ("ai4m-helpers", "torch", "numpy", "scikit-learn", "adversarial-robustness-toolbox",
                    "captum", "transformers", "aif360", "opacus", "torch-geometric", "papermill")


def code_version() -> str | None:
    """The git commit of the helpers' checkout ("+changes" when it has uncommitted edits), so a
    record says which code produced it; None outside a git checkout (an installed wheel)."""
    import subprocess

    here = pathlib.Path(__file__).parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+changes" if dirty else "")


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    code = code_version()
    if code:
        versions["code"] = code
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def parameters_digest(parameters: Mapping[str, Any]) -> str:
    """SHA-256 of the parameters as canonical JSON: a record carries it, so that parameters edited
    in the record after the run are detected (course hand-ins)."""
    text = json.dumps(_jsonable(dict(parameters)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def record_digest(data: Mapping[str, Any]) -> str:
    """SHA-256 of a whole record (its own digest aside) as canonical JSON: any edit after the run,
    to parameters, metrics or claims, changes it. It catches honest mistakes and casual edits; it
    is not a signature (anyone with this function can recompute it)."""
    body = {k: v for k, v in data.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


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
            "parameters_sha256": parameters_digest(parameters),
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

    def add_claim(self, claim: Claim) -> Claim:
        """Keep a decided claim (see :mod:`ai4m_helpers.claims`); returns it for chaining."""
        self.data["claims"].append(_jsonable(claim.to_record()))
        return claim

    def add_claims(self, claims: Iterable[Claim]) -> list[Claim]:
        return [self.add_claim(c) for c in claims]

    def finish(self) -> dict[str, Any]:
        self.data["timings_s"]["total"] = round(time.perf_counter() - self._t0, 3)
        return self.data

    def save(self, path: str | pathlib.Path | None) -> dict[str, Any]:
        """Finish and write to ``path`` (nothing is written when it is empty)."""
        data = self.finish()
        validate_record(data)
        data["record_sha256"] = record_digest(json.loads(json.dumps(data)))
        if path:
            path = pathlib.Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        return data


def timing_text(timings: Mapping[str, float]) -> str:
    """'This run took 23.5 s (data 1.2 s, train 18.0 s, ...).' from a record's timings."""
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items() if name != "total")
    return f"This run took {timings['total']:.1f} s" + (f" ({phases})." if phases else ".")


def validate_record(data: Mapping[str, Any]) -> None:
    """Raise ValueError if a record misses a required field or has malformed claims."""
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"results record lacks {missing}")
    if not isinstance(data["timings_s"], Mapping) or "total" not in data["timings_s"]:
        raise ValueError("results record has no total time")
    for claim in data["claims"]:
        _validate_claim(claim)


def _validate_claim(claim: Mapping[str, Any]) -> None:
    missing = [k for k in CLAIM_KEYS if k not in claim]
    if missing:
        raise ValueError(f"claim {claim.get('name')!r} lacks {missing}")
    if claim["verdict"] not in VERDICTS or claim["held"] is not (claim["verdict"] == "held"):
        raise ValueError(f"claim {claim['name']!r} has verdict {claim['verdict']!r} and held {claim['held']!r}")
    for part in claim.get("parts", []):
        _validate_claim(part)


def load_record(path: str | pathlib.Path) -> dict[str, Any]:
    data = json.loads(pathlib.Path(path).read_text())
    validate_record(data)
    return data
