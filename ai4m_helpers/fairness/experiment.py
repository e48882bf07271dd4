"""Chapter 8's audit: train the detector on imbalanced and on balanced data, then measure output
fairness (AIF360) and robustness bias (ART DeepFool and HopSkipJump) on the same test set."""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import claims as C
from ..data.faces import make_faces
from .models import LabelOnlyService, predict, white_box
from .metrics import aif360_metrics, fairness_table, numpy_metrics
from .robustness_bias import (attack_distances, deepfool, hop_skip_jump, more_vulnerable, pgd_min_distance,
                              robustness_bias, starting_points)
from .train import train_detector

CONDITIONS = ("imbalanced", "balanced")
WHITE = ("DeepFool (white box)", "PGD minimum budget (white box)")
BLACK = "HopSkipJump (label-only service)"


@dataclasses.dataclass
class Audit:
    condition: str
    seed: int
    accuracy: dict
    y_pred: np.ndarray
    distances: dict               # attack -> (distances, groups)
    queries: int


def test_set(p: dict):
    return make_faces(p["n_test"], p["size"], p["test_group_share"], 0.5,
                      (p["artefact_light"], p["artefact_dark"]), seed=10_000 + p["seed"])


def train_set(p: dict, condition: str, seed: int):
    share = p["train_group_share"] if condition == "imbalanced" else 0.5
    return make_faces(p["n_train"], p["size"], share, 0.5, (p["artefact_light"], p["artefact_dark"]),
                      seed=seed)


def attacked_subset(group: np.ndarray, n: int) -> np.ndarray:
    """The first n/2 test images of each group, so both groups are attacked equally often."""
    half = n // 2
    return np.concatenate([np.flatnonzero(group == g)[:half] for g in (0, 1)])


def train(p: dict, condition: str, seed: int, device):
    """Step 1: the detector, trained on this condition's data."""
    x_tr, y_tr, _, _ = train_set(p, condition, seed)
    return train_detector(x_tr, y_tr, p["epochs"], seed, device, p["width"])


def decide(model, test, device) -> tuple[np.ndarray, dict]:
    """Step 2: its verdicts on the test set, and accuracy overall and per group."""
    x_te, y_te, g_te, _ = test
    y_pred = predict(model, x_te, device)
    acc = {"all": float((y_pred == y_te).mean()),
           **{f"group {g}": float((y_pred[g_te == g] == y_te[g_te == g]).mean()) for g in (0, 1)}}
    return y_pred, acc


def white_box_distances(p: dict, model, test, y_pred: np.ndarray, device) -> dict:
    """Step 3: DeepFool and the PGD minimum-budget search on a balanced subset of test images."""
    x_te, _, g_te, _ = test
    idx = attacked_subset(g_te, p["n_deepfool"])
    classifier = white_box(model, p["size"], device)
    d, _ = attack_distances(deepfool(classifier), _classify(model, device), x_te[idx])
    return {WHITE[0]: (d, g_te[idx]),
            WHITE[1]: (pgd_min_distance(classifier, x_te[idx], y_pred[idx], steps=p["pgd_steps"]), g_te[idx])}


def black_box_distances(p: dict, model, test, y_pred: np.ndarray, seed: int, device) -> tuple[dict, int]:
    """Step 4: HopSkipJump against the label-only service; returns the distances and the queries."""
    x_te, _, g_te, _ = test
    service = LabelOnlyService(model, device)
    idx = attacked_subset(g_te, p["n_hsj"])
    hsj = hop_skip_jump(service.art(p["size"]), p["hsj_iter"], p["hsj_max_eval"])
    start = starting_points(x_te, y_pred, y_pred[idx], np.random.default_rng(seed))
    d, _ = attack_distances(hsj, _classify(model, device), x_te[idx], x_adv_init=start)
    return {BLACK: (d, g_te[idx])}, service.queries


def _classify(model, device):
    return lambda x: predict(model, x.astype(np.float32), device)


def audit(p: dict, condition: str, seed: int, test, device) -> Audit:
    """The four steps for one condition and seed."""
    model = train(p, condition, seed, device)
    y_pred, acc = decide(model, test, device)
    distances = white_box_distances(p, model, test, y_pred, device)
    black, queries = black_box_distances(p, model, test, y_pred, seed, device)
    return Audit(condition, seed, acc, y_pred, {**distances, **black}, queries)


def taus_for(audits: list[Audit], points: int = 200) -> np.ndarray:
    """One grid of budgets for every condition and attack, up to just past the largest finite distance."""
    finite = np.concatenate([d[np.isfinite(d)] for a in audits for d, _ in a.distances.values()])
    top = finite.max() * 1.05 if finite.size else 1.0
    return np.linspace(0, top, points)


def of_condition(audits: list[Audit], condition: str) -> list[Audit]:
    return [a for a in audits if a.condition == condition]


def fairness_of(audits: list[Audit], test, rounds: int, seed: int):
    """Per condition, AIF360's metrics averaged over seeds with bootstrap intervals over test images."""
    import pandas as pd

    _, y, g, _ = test
    return pd.concat({c: fairness_table(y, [a.y_pred for a in of_condition(audits, c)], g, rounds, seed)
                      for c in CONDITIONS}, names=["condition", "metric"])


def distances_of(audits: list[Audit], attack: str) -> tuple[np.ndarray, np.ndarray]:
    """(seeds x attacked images) distances and the images' groups (the same images for every seed)."""
    return np.stack([a.distances[attack][0] for a in audits]), audits[0].distances[attack][1]


def robustness_bias_of(audits: list[Audit], attack: str, taus: np.ndarray) -> dict:
    """Robustness bias of one condition under one attack: curves averaged over seeds, and the
    per-seed statistics (largest gap, median-distance ratio, success rates) averaged."""
    d, g = distances_of(audits, attack)
    per_seed = [robustness_bias(row, g, taus) for row in d]
    out = {k: float(np.mean([s[k] for s in per_seed])) for k, v in per_seed[0].items() if np.isscalar(v)}
    out.update(taus=taus, curve_privileged=np.mean([s["curve_privileged"] for s in per_seed], 0),
               curve_unprivileged=np.mean([s["curve_unprivileged"] for s in per_seed], 0), seeds=len(per_seed))
    return out


# -- the claims; margins fixed here, before any run --------------------------------------------
# The fair ranges of AIF360's documentation: differences within +-0.1, disparate impact in
# [0.8, 1.25] (the four-fifths rule); a robustness bias counts as large at 0.2 above chance.
FAIR_TOLERANCE = 0.1
DI_RANGE = (0.8, 1.25)
LARGE_RB = 0.2
NULL_PERMUTATIONS = 200
UNIT = "test image"


def output_gap(fair_values: dict) -> float:
    """The largest absolute difference among the output metrics (disparate impact, a ratio, aside);
    NaN when any of them is undefined (an empty cell), so that no resample quietly drops one."""
    diffs = [abs(v) for k, v in fair_values.items() if k != "disparate_impact"]
    return float("nan") if not np.all(np.isfinite(diffs)) else float(max(diffs))


def output_acceptable(fair_values: dict, tolerance: float = FAIR_TOLERANCE) -> bool:
    di = fair_values["disparate_impact"]
    return output_gap(fair_values) <= tolerance and DI_RANGE[0] <= di <= DI_RANGE[1]


def _seed_mean(fn, predictions_or_distances) -> float:
    return float(np.mean([fn(x) for x in predictions_or_distances]))


def output_gap_stat(y, g, predictions):
    """Largest |output-metric difference| on resampled test images, averaged over detectors."""
    return lambda idx: _seed_mean(lambda p: output_gap(numpy_metrics(y[idx], p[idx], g[idx])), predictions)


def log_di_stat(y, g, predictions):
    """|log disparate impact| on resampled test images, averaged over detectors."""
    def one(p, idx):
        with np.errstate(divide="ignore", invalid="ignore"):
            return abs(np.log(numpy_metrics(y[idx], p[idx], g[idx])["disparate_impact"]))
    return lambda idx: _seed_mean(lambda p: one(p, idx), predictions)


def max_rb_stat(d, g, taus):
    """Largest robustness-bias gap on resampled attacked images, averaged over detectors."""
    return lambda idx: _seed_mean(lambda row: robustness_bias(row[idx], g[idx], taus)["max_rb"], d)


def chance_max_rb(d: np.ndarray, g: np.ndarray, taus: np.ndarray, seed: int) -> float:
    """The largest gap between two groups' curves is positive even when the groups do not differ
    (it is a two-sample Kolmogorov-Smirnov statistic): its mean when the group labels are shuffled."""
    rng = np.random.default_rng(seed)
    every = np.arange(len(g))
    return float(np.mean([max_rb_stat(d, rng.permutation(g), taus)(every) for _ in range(NULL_PERMUTATIONS)]))


def _boot(stat, n: int, p: dict) -> C.Estimate:
    return C.bootstrap(lambda idx: stat(idx.astype(int)), [np.arange(n)], UNIT, p["bootstrap"], p["seed"])


def acceptable_claim(audits, test, taus, p) -> C.Claim:
    """On the imbalanced detector: every output gap within the tolerance, disparate impact within
    the four-fifths range, and yet a robustness bias (DeepFool) at least ``LARGE_RB`` above chance."""
    _, y, g, _ = test
    preds = [a.y_pred for a in of_condition(audits, "imbalanced")]
    d, g_att = distances_of(of_condition(audits, "imbalanced"), WHITE[0])
    chance = chance_max_rb(d, g_att, taus, p["seed"])
    rb = max_rb_stat(d, g_att, taus)
    parts = {
        "largest output gap within the tolerance": C.decide(
            "largest output gap", _boot(output_gap_stat(y, g, preds), len(y), p), direction="less",
            margin=FAIR_TOLERANCE),
        "disparate impact within 0.8-1.25 (|log DI| < log 1.25)": C.decide(
            "|log DI|", _boot(log_di_stat(y, g, preds), len(y), p), direction="less",
            margin=float(np.log(DI_RANGE[1]))),
        "robustness bias (DeepFool) is large: max RB above its chance level": C.decide(
            "max RB - chance", _boot(lambda i: rb(i) - chance, len(g_att), p), direction="greater",
            margin=LARGE_RB, evidence={"max RB": rb(np.arange(len(g_att))), "chance level": chance}),
    }
    return C.combine("Output-fairness metrics look acceptable while robustness bias is large", parts, rule="all")


def vulnerability(d: np.ndarray, g: np.ndarray, p: dict) -> C.Estimate:
    """log(median distance of group 0 / of group 1), averaged over detectors: > 0 when group 1 is
    closer to the boundary (more vulnerable). Groups are resampled separately."""
    d0, d1 = d[:, g == 0], d[:, g == 1]

    def stat(i0, i1):
        i0, i1 = i0.astype(int), i1.astype(int)
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.mean(np.log(np.median(d0[:, i0], 1) / np.median(d1[:, i1], 1))))

    return C.bootstrap(stat, [np.arange(d0.shape[1]), np.arange(d1.shape[1])], UNIT, p["bootstrap"],
                       p["seed"], paired_samples=False)


def agreement_claim(audits, p) -> C.Claim:
    """Per condition and white-box attack: does it agree with the black-box attack on which group
    is more vulnerable? Each attack's answer is a verdict on 'group 1 is more vulnerable'."""
    parts = {}
    for condition in CONDITIONS:
        runs = of_condition(audits, condition)
        sign = {a: C.decide(a, vulnerability(*distances_of(runs, a), p), direction="greater", margin=0.0)
                for a in (*WHITE, BLACK)}
        for white in WHITE:
            key = f"{condition}: {white.split()[0]} and HopSkipJump"
            parts[key] = C.combine(key, {white: sign[white], BLACK: sign[BLACK]}, rule="agree")
    return C.combine("White-box and black-box estimates agree on which group is more vulnerable", parts,
                     rule="all")


def balancing_claim(audits, test, taus, p) -> C.Claim:
    """Balanced minus imbalanced training, per seed (a detector of each per seed, evaluated on the
    same test and attacked images): retraining is what balancing changes, so the replicate is the
    seed, and one seed cannot decide."""
    _, y, g, _ = test
    imb, bal = of_condition(audits, "imbalanced"), of_condition(audits, "balanced")
    every = np.arange(len(y))

    def per_seed(runs, what):
        if what == "output gap":
            return [output_gap_stat(y, g, [a.y_pred])(every) for a in runs]
        d, g_att = distances_of(runs, WHITE[0])
        return [max_rb_stat(row[None], g_att, taus)(np.arange(len(g_att))) for row in d]

    parts = {what: C.decide(what, C.paired(per_seed(imb, what), per_seed(bal, what), unit="seed"),
                            direction="less", margin=0.0)
             for what in ("output gap", "robustness bias (DeepFool)")}
    return C.combine("Balancing the training data reduces both the output-fairness gaps and the robustness bias",
                     parts, rule="all")


def decide_claims(audits: list[Audit], test, p: dict) -> list[C.Claim]:
    taus = taus_for(audits)
    return [acceptable_claim(audits, test, taus, p), agreement_claim(audits, p),
            balancing_claim(audits, test, taus, p)]


__all__ = ["CONDITIONS", "Audit", "aif360_metrics", "audit", "decide_claims", "fairness_of", "more_vulnerable",
           "output_acceptable", "output_gap", "robustness_bias_of", "taus_for", "test_set"]
