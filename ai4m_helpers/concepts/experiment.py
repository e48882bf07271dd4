"""Chapter 4's experiment for one trained model (one dataset, one seed): the cut, the splits, the
controls, the counts; and the claims over every model."""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from .. import claims as C
from .captum_tools import gap_activations
from .data import DATASETS, digits_sets, shape_sets
from .evaluation import (above_chance, chance_purity, class_mean_directions, direction_purity,
                         random_orthant_directions, random_subset_means)
from .models import ConceptCNN
from .train import accuracy, train_classifier
from .pipeline import (Split, SplitConfig, dead_units, excess_silhouette, model_scale, split_at_cuts,
                       svd_directions, top_images)

RANKINGS = ("dot", "cosine")          # the paper's projection first
SUBSETS = "means of random subsets of the same top images"
SUBSET_DRAWS = 5                 # random-subset controls averaged per concept
TRAINED = {"digits": "digit", "shapes": "shape"}     # the label each dataset's model learned
REFERENCE = "class-mean directions (supervised reference)"


@dataclasses.dataclass
class SeedRun:
    dataset: str
    seed: int
    model: ConceptCNN
    data: dict
    probe_acts: np.ndarray
    eval_acts: np.ndarray
    live: np.ndarray               # indices of live units
    scale: dict                    # ranking -> the model-wide unit of the Ward cut
    sweep: dict                    # ranking -> cut fraction -> list of Split (one per live unit)
    cut: dict                      # ranking -> the cut fraction chosen by the rule
    curves: dict                   # ranking -> the cut curve the rule read (see cut_curve)
    test_accuracy: float

    @property
    def neuron_splits(self) -> dict:
        """ranking -> the live units' splits at the chosen cut."""
        return {r: self.sweep[r][self.cut[r]] for r in self.sweep}


def load(dataset: str, p: dict, seed: int) -> dict:
    return digits_sets(seed) if dataset == "digits" else shape_sets(seed, p["n_images"])


def train_model(p: dict, dataset: str, data: dict, seed: int, device) -> tuple[ConceptCNN, float]:
    torch.manual_seed(seed)
    x = torch.tensor(data["x"], device=device)
    y = torch.tensor(data["y"], device=device)
    tr, ev = data["split"]["train"], data["split"]["eval"]
    digits = dataset == "digits"
    model = ConceptCNN(x.shape[1], len(data["classes"]), width=32, channels=p["channels"],
                       downsample=0 if digits else 2).to(device)
    train_classifier(model, x[tr], y[tr], p["train_steps"] if digits else p["shapes_steps"], seed=seed)
    return model, accuracy(model, x[ev], y[ev])


def split_config(p: dict, scale: float, fraction: float, ranking: str = "dot", seed: int = 0) -> SplitConfig:
    """One absolute cut for the whole model: a fraction of its scale (see ``model_scale``)."""
    return SplitConfig(top_n=p["top_n"], threshold=fraction * scale, relative=False,
                       min_cluster=p["min_cluster"], ranking=ranking, seed=seed)


def cut_curve(acts: np.ndarray, sweep: dict, seed: int = 0) -> pd.DataFrame:
    """Per cut: the neurons' mean excess silhouette (their clustering's silhouette minus that of a
    structureless Gaussian with the same k; 0 for a neuron left whole), the share of neurons that
    split into two or more concept vectors, and the share of top images the outlier step kept."""
    nulls: dict[int, dict] = {}      # per direction, the null silhouette by k (same top images)
    return pd.DataFrame([{
        "threshold": f,
        "silhouette": float(np.mean([excess_silhouette(acts, s, seed, nulls.setdefault(i, {}))
                                     for i, s in enumerate(splits)])),
        "share split": float(np.mean([s.n_concepts >= 2 for s in splits])),
        "share of top images kept": float(np.mean([sum(map(len, s.members)) / len(s.top) for s in splits])),
    } for f, splits in sweep.items()])


SILHOUETTE_TOLERANCE = 0.01   # scores this close to the best count as equally good


def choose_cut(p: dict, curve: pd.DataFrame) -> float:
    """The rule, stated before any result: with ``cut_rule = "silhouette"``, among the cuts whose
    mean excess silhouette on the probe split is within ``SILHOUETTE_TOLERANCE`` of the best, the
    highest (the fewest concepts: a split must earn its keep). It reads no labels and not the
    evaluation split, and it prefers leaving neurons whole (excess 0) to splitting them into
    clusters no better than a Gaussian's. With ``"fixed"``, ``threshold``."""
    if p["cut_rule"] == "fixed":
        return p["threshold"]
    best = curve["silhouette"].max()
    return float(curve.loc[curve["silhouette"] >= best - SILHOUETTE_TOLERANCE, "threshold"].max())


def run_seed(p: dict, dataset: str, seed: int, device) -> SeedRun:
    data = load(dataset, p, seed)
    model, acc = train_model(p, dataset, data, seed, device)
    x = torch.tensor(data["x"], device=device)
    probe_acts = gap_activations(model, model.analysed_layer, x[data["split"]["probe"]])
    eval_acts = gap_activations(model, model.analysed_layer, x[data["split"]["eval"]])
    live = np.flatnonzero(~dead_units(probe_acts))
    eye = np.eye(probe_acts.shape[1])
    fractions = sorted(set(p["thresholds"]) | {p["threshold"]})
    with one_thread():
        scale = {r: model_scale(probe_acts, p["top_n"], r, live) for r in RANKINGS}
        sweep = {r: cut_sweep(probe_acts, [eye[u] for u in live], p, scale[r], fractions, r, seed)
                 for r in RANKINGS}
        curves = {r: cut_curve(probe_acts, sweep[r], seed) for r in RANKINGS}
    cut = {r: choose_cut(p, curves[r]) for r in RANKINGS}
    return SeedRun(dataset, seed, model, data, probe_acts, eval_acts, live, scale, sweep, cut, curves, acc)


def one_thread():
    """Thousands of tiny k-means fits: one thread each is faster than a pool of OpenMP threads,
    which also stalls badly when the cores are busy."""
    return threadpool_limits(limits=1)


def cut_sweep(acts: np.ndarray, directions, p: dict, scale: float, fractions, ranking: str = "dot",
              seed: int = 0) -> dict[float, list[Split]]:
    """Cut fraction -> the split of every direction at that cut."""
    cfgs = [split_config(p, scale, f, ranking, seed) for f in fractions]
    per_direction = [split_at_cuts(acts, v, cfgs) for v in directions]
    return {f: [splits[i] for splits in per_direction] for i, f in enumerate(fractions)}


def cut_table(run: SeedRun) -> pd.DataFrame:
    """The silhouette and the share of neurons split at every cut, for each ranking; the chosen
    cut flagged."""
    frames = [run.curves[r].assign(dataset=run.dataset, seed=run.seed, ranking=r) for r in RANKINGS]
    table = pd.concat(frames, ignore_index=True)
    table["chosen"] = [np.isclose(t, run.cut[r]) for t, r in zip(table.threshold, table.ranking)]
    return table


def purity_tables(run: SeedRun, p: dict, attribute: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluation purity of each kind of direction for one attribute: the mean per kind (over
    polysemantic neurons, those with >= 2 concepts, for the first three kinds), and per
    polysemantic neuron the purity of the neuron, the mean of its concept vectors and the mean of
    their random-subset controls."""
    rng = np.random.default_rng(run.seed)
    labels = run.data["attributes"][attribute][run.data["split"]["eval"]]
    chance = chance_purity(labels, p["eval_top"], rng)
    probe_labels = run.data["attributes"][attribute][run.data["split"]["probe"]]
    n = p["eval_top"]
    eye = np.eye(run.probe_acts.shape[1])
    reference = class_mean_directions(run.probe_acts, probe_labels, int(labels.max()) + 1)
    key = {"dataset": run.dataset, "seed": run.seed, "attribute": attribute}
    rows, per_neuron = [], []
    for ranking in RANKINGS:
        def pur(vectors):
            return [direction_purity(run.eval_acts, labels, v, n, ranking) for v in vectors]

        kinds = {"neuron": [], "concept vectors": [], SUBSETS: []}
        for u, split in zip(run.live, run.neuron_splits[ranking]):
            if split.n_concepts < 2:
                continue
            subsets = [np.mean(pur(random_subset_means(run.probe_acts, split, rng))) for _ in range(SUBSET_DRAWS)]
            values = {"neuron": pur([eye[u]]), "concept vectors": pur(split.vectors), SUBSETS: subsets}
            for kind, v in values.items():
                kinds[kind] += v
            per_neuron.append({**key, "ranking": ranking, "unit": int(u),
                               **{kind: float(np.mean(v)) for kind, v in values.items()}})
        kinds["random non-negative directions"] = pur(random_orthant_directions(p["n_random"], eye.shape[0], rng))
        kinds[REFERENCE] = pur(reference)
        for kind, values in kinds.items():
            value = float(np.mean(values)) if values else float("nan")
            rows.append({**key, "ranking": ranking, "direction": kind, "purity": value,
                         "purity above chance": above_chance(value, chance),
                         "directions": len(values), "polysemantic neurons": len(kinds["neuron"])})
    columns = ["dataset", "seed", "ranking", "attribute", "unit", "neuron", "concept vectors", SUBSETS]
    return pd.DataFrame(rows), pd.DataFrame(per_neuron, columns=columns)


def all_purity_tables(runs: list[SeedRun], p: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Purity tables of every model, for every attribute its dataset is judged on."""
    tables = [purity_tables(r, p, a) for r in runs for a in DATASETS[r.dataset]]
    summary, per_neuron = (pd.concat(t, ignore_index=True) for t in zip(*tables))
    return summary, per_neuron


def concept_counts(run: SeedRun, p: dict) -> pd.DataFrame:
    """Concepts per direction, for neurons and SVD directions, at every cut (dot ranking); the
    cut chosen by the rule flagged."""
    svd = svd_directions(run.probe_acts)[:len(run.live)]
    rows = []
    with one_thread():
        svd_sweep = cut_sweep(run.probe_acts, svd, p, run.scale["dot"], list(run.sweep["dot"]), "dot", run.seed)
    for f, neuron_splits in run.sweep["dot"].items():
        for kind, splits in (("neuron", neuron_splits), ("SVD direction", svd_sweep[f])):
            rows += [{"dataset": run.dataset, "seed": run.seed, "threshold": f, "chosen": f == run.cut["dot"],
                      "start": kind, "direction": i, "concepts": s.n_concepts} for i, s in enumerate(splits)]
    return pd.DataFrame(rows)


def top_sets(run: SeedRun, n: int, kind: str, ranking: str) -> list[np.ndarray]:
    """The top-n evaluation images of every live neuron, or of every concept vector (as built
    under that ranking), ranked by ``ranking``."""
    eye = np.eye(run.eval_acts.shape[1])
    if kind == "neuron":
        directions = [eye[u] for u in run.live]
    else:
        directions = [v for s in run.neuron_splits[ranking] for v in s.vectors]
    return [top_images(run.eval_acts, v, n, ranking) for v in directions]


def top_percentiles(run: SeedRun, n: int, kind: str, ranking: str) -> np.ndarray:
    """Per direction: the mean norm percentile (among all evaluation images) of its top-n images."""
    norms = np.linalg.norm(run.eval_acts, axis=1)
    percentile = norms.argsort().argsort() / (len(norms) - 1)
    return np.array([percentile[t].mean() for t in top_sets(run, n, kind, ranking)])


def ranking_diagnostics(run: SeedRun, p: dict) -> pd.DataFrame:
    """Why the dot ranking can fail: how large the activation norms of the top evaluation images
    are (their mean percentile among all evaluation images; 0.5 is no preference), for neurons and
    for concept vectors under each ranking, and how much the top sets of different directions
    overlap (mean pairwise Jaccard index). A neuron is one unit, so the norm of the others does not
    enter its ranking; a concept vector is a dense non-negative mix of units, so under the dot
    product an image that is large everywhere can rank high for every concept vector at once."""
    rows = []
    for kind, ranking in itertools.product(("neuron", "concept vector"), RANKINGS):
        tops = top_sets(run, p["eval_top"], kind, ranking)
        jaccard = [len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in itertools.combinations(tops, 2)]
        levels = top_percentiles(run, p["eval_top"], kind, ranking)
        rows.append({"dataset": run.dataset, "seed": run.seed, "direction": kind, "ranking": ranking,
                     "norm percentile of top images": float(levels.mean()) if len(levels) else float("nan"),
                     "overlap of top sets (Jaccard)": float(np.mean(jaccard)) if jaccard else float("nan")})
    return pd.DataFrame(rows)


def norm_preference(runs: list[SeedRun], p: dict, dataset: str) -> C.Estimate:
    """Under the dot ranking: how much higher concept vectors' top images sit in norm than their
    neurons' (percentile points, Welch over directions pooled over seeds)."""
    mine = [r for r in runs if r.dataset == dataset]
    neuron = np.concatenate([top_percentiles(r, p["eval_top"], "neuron", "dot") for r in mine])
    concept = np.concatenate([top_percentiles(r, p["eval_top"], "concept vector", "dot") for r in mine])
    return C.unpaired(neuron, concept, "direction")


# -- the claims; margins fixed before any result ----------------------------------------------------
def _purity_parts(rows: pd.DataFrame, kinds, label: str = "") -> dict[str, C.Claim]:
    parts = {}
    for (dataset, attribute), group in rows.groupby(["dataset", "attribute"], sort=False):
        for kind in kinds:
            name = f"{dataset}, {attribute}{label}: vs {kind}"
            parts[name] = C.decide(name, C.paired(group[kind], group["concept vectors"], "neuron"),
                                   direction="greater", margin=0.0,
                                   evidence={"purity concepts": group["concept vectors"].mean(),
                                             f"purity {kind}": group[kind].mean()})
    return parts


def _none_split(title: str, why: str) -> C.Claim:
    return C.decide(title, C.paired([], [], "neuron"), direction="greater", margin=0.0, unmeasurable=why)


def purity_claim(per_neuron: pd.DataFrame, ranking: str) -> C.Claim:
    """Concept vectors purer, in the label the model was trained on, than their neuron and than
    random-subset means; paired per polysemantic neuron (pooled over seeds), decided per dataset."""
    trained = per_neuron.attribute == per_neuron.dataset.map(TRAINED)
    rows = per_neuron[(per_neuron.ranking == ranking) & trained]
    title = (f"Concept vectors are purer than their neuron and than random-subset means "
             f"({ranking} ranking)")
    parts = _purity_parts(rows, ("neuron", SUBSETS))
    return C.combine(title, parts, rule="all") if parts else _none_split(
        title, "no neuron split into two or more concepts")


def untrained_claim(per_neuron: pd.DataFrame) -> C.Claim:
    """Beyond the training label: concept vectors purer than their neuron in the factors the model
    was never trained to separate (the shapes' colour and texture), per factor and ranking."""
    rows = per_neuron[per_neuron.attribute != per_neuron.dataset.map(TRAINED)]
    title = "Beyond the training label: concept vectors are purer than their neuron in colour and texture"
    parts = {}
    for ranking in RANKINGS:
        parts.update(_purity_parts(rows[rows.ranking == ranking], ("neuron",), f" ({ranking})"))
    return C.combine(title, parts, rule="all") if parts else _none_split(
        title, "no factor beyond the training label was measured (the shapes did not run) or no neuron split")


def granularity_claim(counts: pd.DataFrame) -> C.Claim:
    """Per neuron: concepts at the highest cut minus at the lowest (fewer as the cut rises)."""
    parts = {}
    for dataset, rows in counts[counts.start == "neuron"].groupby("dataset", sort=False):
        neurons = rows.pivot_table(index=["seed", "direction"], columns="threshold", values="concepts")
        low, high = neurons.columns.min(), neurons.columns.max()
        parts[dataset] = C.decide(dataset, C.paired(neurons[low], neurons[high], "neuron"), direction="less",
                                  margin=0.0, evidence={f"concepts per neuron at {low:g}": neurons[low].mean(),
                                                        f"concepts per neuron at {high:g}": neurons[high].mean()})
    return C.combine("The cut controls granularity (concepts per neuron fall as it rises)", parts, rule="all")


def svd_claim(counts: pd.DataFrame) -> C.Claim:
    """Concepts per SVD direction minus per neuron at each model's chosen cut (Welch, directions
    pooled over seeds; the paper compares the same counts: 1,292 concepts from 2,048 SVD
    directions against 4,232 from 2,048 neurons), decided per dataset."""
    parts = {}
    for dataset, main in counts[counts.chosen].groupby("dataset", sort=False):
        neuron, svd = (main[main.start == k].concepts.to_numpy(float) for k in ("neuron", "SVD direction"))
        parts[dataset] = C.decide(dataset, C.unpaired(neuron, svd, "direction"), direction="less", margin=0.0,
                                  evidence={"concepts per neuron": neuron.mean(),
                                            "concepts per SVD direction": svd.mean(),
                                            "share of neurons split": (neuron >= 2).mean(),
                                            "share of SVD directions split": (svd >= 2).mean()})
    return C.combine("SVD directions split into fewer concepts than neurons", parts, rule="all")


def decide_claims(per_neuron: pd.DataFrame, counts: pd.DataFrame) -> list[C.Claim]:
    return [*(purity_claim(per_neuron, r) for r in RANKINGS), untrained_claim(per_neuron),
            granularity_claim(counts), svd_claim(counts)]


def example_split(run: SeedRun, ranking: str = "dot") -> tuple[int, Split]:
    """The live unit with the most concept vectors at the chosen cut, and its split."""
    splits = run.neuron_splits[ranking]
    pos = int(np.argmax([s.n_concepts for s in splits]))
    return int(run.live[pos]), splits[pos]
