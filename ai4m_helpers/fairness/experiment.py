"""Chapter 8's audit: train the detector on imbalanced and on balanced data, then measure output
fairness (AIF360) and robustness bias (ART DeepFool and HopSkipJump) on the same test set."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..data.faces import make_faces
from .detector import LabelOnlyService, predict, train_detector, white_box
from .metrics import aif360_metrics, bootstrap, fairness_table
from .robustness_bias import (attack_distances, deepfool, hop_skip_jump, more_vulnerable, pgd_min_distance,
                              robustness_bias, starting_points)

CONDITIONS = ("imbalanced", "balanced")


@dataclasses.dataclass
class Audit:
    condition: str
    seed: int
    accuracy: dict
    fairness: object              # DataFrame: value, ci_low, ci_high
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


def audit(p: dict, condition: str, seed: int, test, device) -> Audit:
    x_tr, y_tr, _, _ = train_set(p, condition, seed)
    model = train_detector(x_tr, y_tr, p["epochs"], seed, device, p["width"])
    x_te, y_te, g_te, _ = test
    y_pred = predict(model, x_te, device)
    acc = {"all": float((y_pred == y_te).mean()),
           **{f"group {g}": float((y_pred[g_te == g] == y_te[g_te == g]).mean()) for g in (0, 1)}}
    rng = np.random.default_rng(seed)
    fair = fairness_table(y_te, y_pred, g_te, p["bootstrap"], rng)
    classify = lambda x: predict(model, x.astype(np.float32), device)  # noqa: E731
    distances = {}
    idx = attacked_subset(g_te, p["n_deepfool"])
    d, _ = attack_distances(deepfool(white_box(model, p["size"], device)), classify, x_te[idx])
    distances["DeepFool (white box)"] = (d, g_te[idx])
    distances["PGD minimum budget (white box)"] = (
        pgd_min_distance(model, x_te[idx], y_pred[idx], steps=p["pgd_steps"], device=device), g_te[idx])
    service = LabelOnlyService(model, device)
    idx = attacked_subset(g_te, p["n_hsj"])
    hsj = hop_skip_jump(service.art(p["size"]), p["hsj_iter"], p["hsj_max_eval"])
    start = starting_points(x_te, y_pred, y_pred[idx], rng)
    d, _ = attack_distances(hsj, classify, x_te[idx], x_adv_init=start)
    distances["HopSkipJump (label-only service)"] = (d, g_te[idx])
    return Audit(condition, seed, acc, fair, y_pred, distances, service.queries)


def taus_for(distances: dict, points: int = 200) -> np.ndarray:
    finite = np.concatenate([d[np.isfinite(d)] for d, _ in distances.values()])
    top = finite.max() * 1.05 if finite.size else 1.0
    return np.linspace(0, top, points)


def rb_with_ci(d: np.ndarray, g: np.ndarray, taus: np.ndarray, rounds: int, rng) -> dict:
    summary = robustness_bias(d, g, taus)
    ci = bootstrap(lambda i: {"max_rb": robustness_bias(d[i], g[i], taus)["max_rb"]}, len(d), rounds, rng)
    summary["max_rb_ci"] = ci["max_rb"]
    return summary


# The fair ranges AIF360's documentation gives: differences within +-0.1, disparate impact in
# [0.8, 1.25] (the four-fifths rule).
DI_RANGE = (0.8, 1.25)


def output_gap(fair_values: dict) -> float:
    """The largest absolute difference among the output metrics (disparate impact, a ratio, aside)."""
    return max(abs(v) for k, v in fair_values.items() if k != "disparate_impact" and np.isfinite(v))


def output_acceptable(fair_values: dict, tolerance: float) -> bool:
    di = fair_values["disparate_impact"]
    return output_gap(fair_values) <= tolerance and DI_RANGE[0] <= di <= DI_RANGE[1]


__all__ = ["CONDITIONS", "Audit", "aif360_metrics", "audit", "more_vulnerable", "output_acceptable", "output_gap", "rb_with_ci",
           "taus_for", "test_set"]
