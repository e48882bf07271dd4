"""Chapter 4's experiment for one trained model (one seed): splits, controls, counts."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from .captum_tools import gap_activations
from .data import composition_sets, digits_sets
from .evaluation import (class_mean_directions, direction_purity, random_orthant_directions,
                         random_subset_means)
from .models import ConceptCNN, accuracy, train_classifier
from .pipeline import SplitConfig, dead_units, model_scale, split_direction, svd_directions

RANKINGS = ("dot", "cosine")


def fractions(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


@dataclasses.dataclass
class SeedRun:
    seed: int
    model: ConceptCNN
    data: dict
    probe_acts: np.ndarray
    eval_acts: np.ndarray
    live: np.ndarray               # indices of live units
    scale: dict                    # ranking -> the model-wide unit of the Ward cut
    neuron_splits: dict            # ranking -> list of Split (one per live unit)
    test_accuracy: float


def load(p: dict, seed: int) -> dict:
    return digits_sets(seed) if p["dataset"] == "digits" else composition_sets(seed, p["n_images"])


def train_model(p: dict, data: dict, seed: int, device) -> tuple[ConceptCNN, float]:
    torch.manual_seed(seed)
    x = torch.tensor(data["x"], device=device)
    y = torch.tensor(data["y"], device=device)
    tr, ev = data["split"]["train"], data["split"]["eval"]
    model = ConceptCNN(x.shape[1], len(data["classes"]), width=32, channels=p["channels"],
                       downsample=0 if p["dataset"] == "digits" else 2).to(device)
    train_classifier(model, x[tr], y[tr], p["train_steps"], seed=seed)
    return model, accuracy(model, x[ev], y[ev])


def split_config(p: dict, scale: float, threshold: float | None = None, ranking: str = "dot",
                 seed: int = 0) -> SplitConfig:
    """One absolute cut for the whole model: a fraction of its scale (see ``model_scale``)."""
    fraction = p["threshold"] if threshold is None else threshold
    return SplitConfig(top_n=p["top_n"], threshold=fraction * scale, relative=False,
                       min_cluster=p["min_cluster"], ranking=ranking, seed=seed)


def run_seed(p: dict, seed: int, device) -> SeedRun:
    data = load(p, seed)
    model, acc = train_model(p, data, seed, device)
    x = torch.tensor(data["x"], device=device)
    probe_acts = gap_activations(model, model.analysed_layer, x[data["split"]["probe"]])
    eval_acts = gap_activations(model, model.analysed_layer, x[data["split"]["eval"]])
    live = np.flatnonzero(~dead_units(probe_acts))
    scale = {r: model_scale(probe_acts, p["top_n"], r, live) for r in RANKINGS}
    eye = np.eye(probe_acts.shape[1])
    neuron_splits = {r: [split_direction(probe_acts, eye[u], split_config(p, scale[r], ranking=r, seed=seed))
                         for u in live] for r in RANKINGS}
    return SeedRun(seed, model, data, probe_acts, eval_acts, live, scale, neuron_splits, acc)


def purity_table(run: SeedRun, p: dict, attribute: str) -> pd.DataFrame:
    """Mean evaluation purity of each kind of direction, over polysemantic neurons (>= 2 concepts)."""
    rng = np.random.default_rng(run.seed)
    labels = run.data["attributes"][attribute][run.data["split"]["eval"]]
    probe_labels = run.data["attributes"][attribute][run.data["split"]["probe"]]
    n = p["eval_top"]
    eye = np.eye(run.probe_acts.shape[1])
    oracle = class_mean_directions(run.probe_acts, probe_labels, int(labels.max()) + 1)
    rows = []
    for ranking in RANKINGS:
        def pur(v):
            return direction_purity(run.eval_acts, labels, v, n, ranking)

        poly = [(u, s) for u, s in zip(run.live, run.neuron_splits[ranking]) if s.n_concepts >= 2]
        kinds = {
            "neuron": [pur(eye[u]) for u, _ in poly],
            "concept vectors": [pur(v) for _, s in poly for v in s.vectors],
            "means of random subsets of the same top images":
                [pur(v) for _, s in poly for v in random_subset_means(run.probe_acts, s, rng)],
            "random non-negative directions":
                [pur(v) for v in random_orthant_directions(p["n_random"], eye.shape[0], rng)],
            "class-mean directions (oracle)": [pur(v) for v in oracle],
        }
        for kind, values in kinds.items():
            rows.append({"seed": run.seed, "ranking": ranking, "attribute": attribute, "direction": kind,
                         "purity": float(np.mean(values)) if values else float("nan"),
                         "directions": len(values), "polysemantic neurons": len(poly)})
    return pd.DataFrame(rows)


def concept_counts(run: SeedRun, p: dict) -> pd.DataFrame:
    """Concepts per direction, for neurons and SVD directions, at every threshold (dot ranking)."""
    eye = np.eye(run.probe_acts.shape[1])
    svd = svd_directions(run.probe_acts)[:len(run.live)]
    rows = []
    for f in fractions(p["thresholds"]):
        cfg = split_config(p, run.scale["dot"], threshold=f, seed=run.seed)
        for kind, directions in (("neuron", [eye[u] for u in run.live]), ("SVD direction", svd)):
            for i, v in enumerate(directions):
                rows.append({"seed": run.seed, "threshold": f, "start": kind, "direction": i,
                             "concepts": split_direction(run.probe_acts, v, cfg).n_concepts})
    return pd.DataFrame(rows)
