"""Group fairness of the detector's decisions, with AIF360, and bootstrap confidence intervals.

Positive = "fake". Privileged group 0 (light skin, the majority in training), unprivileged group 1.
AIF360 computes every metric it has; the equalized-odds difference, which its classic API lacks,
is max(|FPR gap|, |TPR gap|) from AIF360's own rates. A plain NumPy version of the same formulas
serves scipy's bootstrap (thousands of resamples) and is tested equal to AIF360.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("statistical_parity_difference", "disparate_impact", "equal_opportunity_difference",
           "average_odds_difference", "false_positive_rate_difference", "error_rate_difference",
           "equalized_odds_difference")
UNPRIVILEGED, PRIVILEGED = [{"group": 1}], [{"group": 0}]


def _import_aif360():
    """AIF360 logs a warning for every optional extra it lacks (TensorFlow, fairlearn...); we use
    none of them."""
    import logging

    logging.disable(logging.WARNING)
    try:
        from aif360.datasets import BinaryLabelDataset
        from aif360.metrics import ClassificationMetric
    finally:
        logging.disable(logging.NOTSET)
    return BinaryLabelDataset, ClassificationMetric


def aif360_metrics(y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray) -> dict[str, float]:
    import warnings

    BinaryLabelDataset, ClassificationMetric = _import_aif360()

    def dataset(labels):
        df = pd.DataFrame({"fake": labels.astype(float), "group": group.astype(float)})
        return BinaryLabelDataset(df=df, label_names=["fake"], protected_attribute_names=["group"],
                                  favorable_label=1, unfavorable_label=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # empty cells give NaN, reported as such
        m = ClassificationMetric(dataset(y_true), dataset(y_pred), unprivileged_groups=UNPRIVILEGED,
                                 privileged_groups=PRIVILEGED)
        out = {name: float(getattr(m, name)()) for name in METRICS[:-1]}
        out["equalized_odds_difference"] = float(max(abs(m.false_positive_rate_difference()),
                                                     abs(m.true_positive_rate_difference())))
    return out


def rates(y_true, y_pred, mask) -> dict[str, float]:
    t, p = y_true[mask], y_pred[mask]
    pos, neg = t == 1, t == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"selection": p.mean(), "tpr": (p[pos] == 1).mean() if pos.any() else np.nan,
                "fpr": (p[neg] == 1).mean() if neg.any() else np.nan, "error": (p != t).mean()}


def numpy_metrics(y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray) -> dict[str, float]:
    """The same definitions as AIF360 (unprivileged minus privileged)."""
    u, p = rates(y_true, y_pred, group == 1), rates(y_true, y_pred, group == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        di = u["selection"] / p["selection"]
    return {"statistical_parity_difference": u["selection"] - p["selection"], "disparate_impact": di,
            "equal_opportunity_difference": u["tpr"] - p["tpr"],
            "average_odds_difference": 0.5 * ((u["fpr"] - p["fpr"]) + (u["tpr"] - p["tpr"])),
            "false_positive_rate_difference": u["fpr"] - p["fpr"],
            "error_rate_difference": u["error"] - p["error"],
            "equalized_odds_difference": max(abs(u["fpr"] - p["fpr"]), abs(u["tpr"] - p["tpr"]))}


def fairness_table(y_true, predictions: list[np.ndarray], group, rounds: int, seed: int = 0,
                   level: float = 0.95) -> pd.DataFrame:
    """AIF360's values, averaged over detectors (seeds) evaluated on the same test set, with
    percentile bootstrap intervals over test images (scipy; the detectors share each resample)."""
    from scipy import stats

    values = pd.DataFrame([aif360_metrics(y_true, y_pred, group) for y_pred in predictions]).mean()

    def statistic(idx):
        idx = idx.astype(int)
        return np.array([[numpy_metrics(y_true[idx], p[idx], group[idx])[m] for m in METRICS]
                         for p in predictions]).mean(0)

    with np.errstate(invalid="ignore", divide="ignore"):
        res = stats.bootstrap((np.arange(len(y_true)),), statistic, n_resamples=rounds, vectorized=False,
                              confidence_level=level, method="percentile", random_state=seed)
    return pd.DataFrame({"value": values[list(METRICS)], "ci_low": res.confidence_interval.low,
                         "ci_high": res.confidence_interval.high}, index=list(METRICS))


def confusion_by_group(y_true, y_pred, group) -> dict[int, np.ndarray]:
    """2x2 confusion matrix (rows: true genuine/fake; columns: predicted) per group."""
    out = {}
    for g in (0, 1):
        m = group == g
        out[g] = np.array([[np.sum((y_true[m] == t) & (y_pred[m] == p)) for p in (0, 1)] for t in (0, 1)])
    return out
