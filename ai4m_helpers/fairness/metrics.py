"""Group fairness of the detector's decisions, with AIF360, and bootstrap confidence intervals.

Positive = "fake": AIF360's ``favorable_label=1`` here means "flagged as fake", a convention of
the API, not a favourable outcome, so statistical parity and disparate impact compare how often
each group is flagged. Privileged group 0 (light skin, the majority in training), unprivileged
group 1. AIF360 computes every metric (the equalized-odds difference is max(|FPR gap|, |TPR gap|)).
A plain NumPy version of the same formulas serves scipy's bootstrap (thousands of resamples) and
is tested equal to AIF360.
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
        return {name: float(getattr(m, name)()) for name in METRICS}


def cell_counts(y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Counts of the 8 cells group x truth x verdict (index 4 * group + 2 * truth + verdict):
    every metric below is a function of them, so a bootstrap resample costs one bincount."""
    return np.bincount(4 * group.astype(int) + 2 * y_true.astype(int) + y_pred.astype(int), minlength=8)


def _rates(c: np.ndarray) -> dict[str, float]:
    """Selection rate, TPR, FPR and error rate of one group from its 4 cells (truth x verdict)."""
    tn, fp, fn, tp = c
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"selection": (fp + tp) / c.sum(), "tpr": tp / (tp + fn), "fpr": fp / (fp + tn),
                "error": (fp + fn) / c.sum()}


def metrics_from_counts(counts: np.ndarray) -> dict[str, float]:
    """The same definitions as AIF360 (unprivileged minus privileged), from :func:`cell_counts`."""
    p, u = _rates(counts[:4].astype(float)), _rates(counts[4:].astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        di = u["selection"] / p["selection"]
    return {"statistical_parity_difference": u["selection"] - p["selection"], "disparate_impact": di,
            "equal_opportunity_difference": u["tpr"] - p["tpr"],
            "average_odds_difference": 0.5 * ((u["fpr"] - p["fpr"]) + (u["tpr"] - p["tpr"])),
            "false_positive_rate_difference": u["fpr"] - p["fpr"],
            "error_rate_difference": u["error"] - p["error"],
            "equalized_odds_difference": max(abs(u["fpr"] - p["fpr"]), abs(u["tpr"] - p["tpr"]))}


def numpy_metrics(y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray) -> dict[str, float]:
    """The same definitions as AIF360 (unprivileged minus privileged), in plain NumPy."""
    return metrics_from_counts(cell_counts(y_true, y_pred, group))


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
