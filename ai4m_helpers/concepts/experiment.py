"""Chapter 4's experiment for one trained model (one seed): splits, controls, counts."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from .. import claims as C
from .captum_tools import gap_activations
from .data import composition_sets, digits_sets
from .evaluation import (class_mean_directions, direction_purity, random_orthant_directions,
                         random_subset_means)
from .models import ConceptCNN
from .train import accuracy, train_classifier
from .pipeline import SplitConfig, dead_units, model_scale, split_direction, svd_directions

RANKINGS = ("dot", "cosine")


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


SUBSETS = "means of random subsets of the same top images"


def purity_tables(run: SeedRun, p: dict, attribute: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluation purity of each kind of direction: the mean per kind (over polysemantic neurons,
    those with >= 2 concepts, for the first three kinds), and per polysemantic neuron the purity of
    the neuron, the mean of its concept vectors and the mean of their random-subset controls."""
    rng = np.random.default_rng(run.seed)
    labels = run.data["attributes"][attribute][run.data["split"]["eval"]]
    probe_labels = run.data["attributes"][attribute][run.data["split"]["probe"]]
    n = p["eval_top"]
    eye = np.eye(run.probe_acts.shape[1])
    oracle = class_mean_directions(run.probe_acts, probe_labels, int(labels.max()) + 1)
    rows, per_neuron = [], []
    for ranking in RANKINGS:
        def pur(vectors):
            return [direction_purity(run.eval_acts, labels, v, n, ranking) for v in vectors]

        kinds = {"neuron": [], "concept vectors": [], SUBSETS: []}
        for u, split in zip(run.live, run.neuron_splits[ranking]):
            if split.n_concepts < 2:
                continue
            values = {"neuron": pur([eye[u]]), "concept vectors": pur(split.vectors),
                      SUBSETS: pur(random_subset_means(run.probe_acts, split, rng))}
            for kind, v in values.items():
                kinds[kind] += v
            per_neuron.append({"seed": run.seed, "ranking": ranking, "attribute": attribute, "unit": int(u),
                               **{kind: float(np.mean(v)) for kind, v in values.items()}})
        kinds["random non-negative directions"] = pur(random_orthant_directions(p["n_random"], eye.shape[0], rng))
        kinds["class-mean directions (oracle)"] = pur(oracle)
        for kind, values in kinds.items():
            rows.append({"seed": run.seed, "ranking": ranking, "attribute": attribute, "direction": kind,
                         "purity": float(np.mean(values)) if values else float("nan"),
                         "directions": len(values), "polysemantic neurons": len(kinds["neuron"])})
    columns = ["seed", "ranking", "attribute", "unit", "neuron", "concept vectors", SUBSETS]
    return pd.DataFrame(rows), pd.DataFrame(per_neuron, columns=columns)


def concept_counts(run: SeedRun, p: dict) -> pd.DataFrame:
    """Concepts per direction, for neurons and SVD directions, at every threshold (dot ranking)."""
    eye = np.eye(run.probe_acts.shape[1])
    svd = svd_directions(run.probe_acts)[:len(run.live)]
    rows = []
    for f in p["thresholds"]:
        cfg = split_config(p, run.scale["dot"], threshold=f, seed=run.seed)
        for kind, directions in (("neuron", [eye[u] for u in run.live]), ("SVD direction", svd)):
            for i, v in enumerate(directions):
                rows.append({"seed": run.seed, "threshold": f, "start": kind, "direction": i,
                             "concepts": split_direction(run.probe_acts, v, cfg).n_concepts})
    return pd.DataFrame(rows)


# -- the claims; margins fixed before any result ----------------------------------------------------
def purity_claim(per_neuron: pd.DataFrame, ranking: str) -> C.Claim:
    """Concept vectors purer than their neuron and than random-subset means, paired per
    polysemantic neuron (pooled over seeds)."""
    rows = per_neuron[per_neuron.ranking == ranking]
    none = "no neuron split into two or more concepts" if rows.empty else None
    parts = {f"vs {kind}": C.decide(f"vs {kind}", C.paired(rows[kind], rows["concept vectors"], "neuron"),
                                    direction="greater", margin=0.0, unmeasurable=none,
                                    evidence={"purity concepts": rows["concept vectors"].mean(),
                                              f"purity {kind}": rows[kind].mean()})
             for kind in ("neuron", SUBSETS)}
    return C.combine(f"Concept vectors are purer than their neuron and than random-subset means "
                     f"({ranking} ranking)", parts, rule="all")


def granularity_claim(counts: pd.DataFrame) -> C.Claim:
    """Per neuron: concepts at the highest threshold minus at the lowest (fewer as the cut rises)."""
    neurons = counts[counts.start == "neuron"].pivot_table(index=["seed", "direction"], columns="threshold",
                                                           values="concepts")
    low, high = neurons.columns.min(), neurons.columns.max()
    return C.decide("The threshold controls granularity (concepts per neuron fall as it rises)",
                    C.paired(neurons[low], neurons[high], "neuron"), direction="less", margin=0.0,
                    evidence={f"concepts per neuron at {t:g}": neurons[t].mean() for t in neurons.columns})


def svd_claim(counts: pd.DataFrame, threshold: float) -> C.Claim:
    """Concepts per SVD direction minus per neuron at the main cut (Welch, directions pooled over
    seeds; the paper compares the same counts: 1,292 concepts from 2,048 SVD directions against
    4,232 from 2,048 neurons)."""
    main = counts[np.isclose(counts.threshold, threshold)]
    neuron, svd = (main[main.start == k].concepts.to_numpy(float) for k in ("neuron", "SVD direction"))
    return C.decide("SVD directions split into fewer concepts than neurons", C.unpaired(neuron, svd, "direction"),
                    direction="less", margin=0.0,
                    evidence={"concepts per neuron": neuron.mean(), "concepts per SVD direction": svd.mean(),
                              "share of neurons split": (neuron >= 2).mean(),
                              "share of SVD directions split": (svd >= 2).mean()})


def decide_claims(per_neuron: pd.DataFrame, counts: pd.DataFrame, threshold: float) -> list[C.Claim]:
    return [*(purity_claim(per_neuron, r) for r in RANKINGS), granularity_claim(counts),
            svd_claim(counts, threshold)]
