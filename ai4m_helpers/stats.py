"""Small statistics shared by the chapters' claims: a mean with its standard error, and the note
a claim carries when its difference cannot be told from run-to-run noise."""
from __future__ import annotations

from typing import Iterable

import numpy as np


def mean_se(values: Iterable[float]) -> tuple[float, float | None]:
    """Mean and standard error of the mean; no standard error from a single value."""
    v = np.asarray(list(values), float)
    return float(v.mean()), (float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None)


def noise_note(diff: float, se: float | None, n: int, unit: str = "seed") -> str:
    """Says when a paired difference over ``n`` runs (seeds, zoos) is too small to read much into."""
    if n < 2 or se is None:
        return f"one {unit}: no estimate of {unit}-to-{unit} noise"
    if abs(diff) < 2 * se:
        return f"the difference is within two standard errors of the paired per-{unit} differences"
    return ""
