"""Competitions as bundles: one YAML file that says everything a benchmark needs (task, data,
fixed splits, metrics, phases, limits, ranking), validated against a JSON schema so that a
malformed bundle is refused in one line.

The splits are drawn once from the bundle's seed and stored as index arrays with their SHA-256:
a rerun, another worker or another machine scores on exactly the same examples, and the hash
shows it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import pathlib
from typing import Any

import numpy as np

DATASETS = ("digits", "wine", "breast_cancer")     # they ship inside scikit-learn: nothing is downloaded
METRICS = ("accuracy", "macro_f1")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "data", "splits", "metrics", "phases", "limits"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "data": {"type": "object", "additionalProperties": False, "required": ["dataset"],
                 "properties": {"dataset": {"enum": list(DATASETS)}}},
        "splits": {"type": "object", "additionalProperties": False,
                   "required": ["seed", "public", "private"],
                   "properties": {"seed": {"type": "integer", "minimum": 0},
                                  "public": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                                  "private": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                                  "train_size": {"type": "integer", "minimum": 10}}},
        "metrics": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(METRICS)}},
        "primary": {"enum": list(METRICS)},
        "phases": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "start", "end"],
            "properties": {"name": {"type": "string", "pattern": "^[a-z0-9-]+$"},
                           "start": {"type": "string", "format": "date-time"},
                           "end": {"type": "string", "format": "date-time"}}}},
        "limits": {"type": "object", "additionalProperties": False,
                   "required": ["wall_s", "cpu_s", "memory_mb", "submissions_per_day"],
                   "properties": {"wall_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
                                  "cpu_s": {"type": "integer", "minimum": 1, "maximum": 86400},
                                  "memory_mb": {"type": "integer", "minimum": 64, "maximum": 1_000_000},
                                  "processes": {"type": "integer", "minimum": 1, "maximum": 4096},
                                  "gpu": {"type": "boolean"},
                                  "submissions_per_day": {"type": "integer", "minimum": 1}}},
    },
}


class BundleError(ValueError):
    """A bundle that cannot be used, with the one-line reason."""


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    start: dt.datetime
    end: dt.datetime

    def is_over(self, now: dt.datetime) -> bool:
        return now >= self.end


@dataclasses.dataclass(frozen=True)
class Limits:
    wall_s: float
    cpu_s: int
    memory_mb: int
    submissions_per_day: int
    processes: int = 64
    gpu: bool = False               # runs may use the worker's GPU, where it has one


@dataclasses.dataclass(frozen=True)
class Competition:
    title: str
    dataset: str
    split_seed: int
    public_share: float
    private_share: float
    train_size: int | None
    metrics: tuple[str, ...]
    primary: str
    phases: tuple[Phase, ...]
    limits: Limits
    text: str                       # the bundle as written, kept with the competition

    def phase(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise BundleError(f"no phase named {name!r}; phases: {', '.join(p.name for p in self.phases)}")


def _parse_time(text: str, where: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BundleError(f"{where}: {text!r} is not an ISO date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def parse_bundle(text: str) -> Competition:
    """A competition from the bundle's YAML text, or :class:`BundleError` with one line."""
    import jsonschema
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise BundleError(f"the bundle is not valid YAML: {str(err).splitlines()[0]}") from None
    try:
        jsonschema.validate(raw, SCHEMA)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "the bundle"
        raise BundleError(f"{where}: {err.message}") from None
    splits = raw["splits"]
    if splits["public"] + splits["private"] >= 1:
        raise BundleError("splits: public + private must leave examples for training")
    phases = tuple(Phase(p["name"], _parse_time(p["start"], f"phases/{p['name']}/start"),
                         _parse_time(p["end"], f"phases/{p['name']}/end")) for p in raw["phases"])
    for p in phases:
        if p.end <= p.start:
            raise BundleError(f"phases/{p.name}: the end must come after the start")
    if len({p.name for p in phases}) != len(phases):
        raise BundleError("phases: every phase needs its own name")
    primary = raw.get("primary", raw["metrics"][0])
    if primary not in raw["metrics"]:
        raise BundleError(f"primary: {primary!r} is not one of the bundle's metrics")
    return Competition(raw["title"], raw["data"]["dataset"], splits["seed"], splits["public"], splits["private"],
                       splits.get("train_size"), tuple(raw["metrics"]), primary, phases, Limits(**raw["limits"]),
                       text)


def load_bundle(path: str | pathlib.Path) -> Competition:
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise BundleError(f"cannot read the bundle {path}: {err.strerror}") from None
    return parse_bundle(text)


# -- data and splits ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Splits:
    """Indices into the dataset of each split, and their hash."""

    train: np.ndarray
    public: np.ndarray
    private: np.ndarray

    def sha256(self, x: np.ndarray, y: np.ndarray) -> str:
        """The hash of the split indices and of the examples and labels they pick: a change of
        split or of data changes it."""
        h = hashlib.sha256()
        for name in ("train", "public", "private"):
            idx = np.ascontiguousarray(getattr(self, name), dtype=np.int64)
            h.update(name.encode())
            h.update(idx.tobytes())
            h.update(np.ascontiguousarray(x[idx], dtype=np.float64).tobytes())
            h.update(np.ascontiguousarray(y[idx], dtype=np.int64).tobytes())
        return h.hexdigest()

    @property
    def test(self) -> np.ndarray:
        """The public and private examples together (the platform shows them to submissions in a
        secret order)."""
        return np.concatenate([self.public, self.private])


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = {"digits": datasets.load_digits, "wine": datasets.load_wine,
              "breast_cancer": datasets.load_breast_cancer}[name]
    bunch = loader()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64)


def make_splits(competition: Competition, n: int) -> Splits:
    """A seeded permutation cut into private, public and train (the first ``train_size`` of the
    rest if the bundle sets one)."""
    order = np.random.default_rng(competition.split_seed).permutation(n)
    n_private, n_public = round(competition.private_share * n), round(competition.public_share * n)
    private, public = np.sort(order[:n_private]), np.sort(order[n_private:n_private + n_public])
    train = order[n_private + n_public:]
    if competition.train_size is not None:
        if competition.train_size > len(train):
            raise BundleError(f"splits/train_size: only {len(train)} examples are left for training")
        train = train[:competition.train_size]
    return Splits(np.sort(train), public, private)
