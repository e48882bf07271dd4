"""From frame scores to a summary, as the video-summarisation benchmarks do it: shots from
kernel temporal segmentation (KTS, Potapov et al. 2014), a score per shot (the mean of its frame
scores), and the shots a 0/1 knapsack picks within a budget of 15 % of the video's length."""
from __future__ import annotations

import math

import numpy as np


def _scatter_table(K: np.ndarray) -> np.ndarray:
    """C[i, j] for 0 <= i < j <= T: the within-segment kernel scatter of frames i..j-1,
    sum of K[t, t] minus the sum of the block K[i:j, i:j] over its length (inf where i >= j)."""
    T = len(K)
    S = np.zeros((T + 1, T + 1))
    S[1:, 1:] = K.cumsum(0).cumsum(1)                       # 2-D prefix sums
    diag = np.r_[0, np.cumsum(np.diag(K))]
    i, j = np.meshgrid(np.arange(T + 1), np.arange(T + 1), indexing="ij")
    length = np.maximum(j - i, 1)
    block = S[j, j] - S[i, j] - S[j, i] + S[i, i]
    C = diag[j] - diag[i] - block / length
    return np.where(j > i, C, np.inf)


def segment(K: np.ndarray, max_changes: int) -> list[tuple[np.ndarray, float]]:
    """For m = 0..``max_changes``: the m change points minimising the total within-segment
    scatter (dynamic programming), and that scatter. A change point t starts a new segment at
    frame t."""
    T = len(K)
    C = _scatter_table(K)
    cost = C[0].copy()                                       # cost[j]: best for frames 0..j-1, one segment
    back, out = [], [(np.array([], int), float(cost[T]))]
    for _ in range(min(max_changes, T - 1)):
        total = cost[:, None] + C                            # previous end i, new segment i..j-1
        back.append(total.argmin(axis=0))
        cost = total.min(axis=0)
        points, j = [], T
        for arg in reversed(back):
            j = int(arg[j])
            points.append(j)
        out.append((np.array(sorted(points), int), float(cost[T])))
    return out


def kts(features: np.ndarray, max_changes: int, penalty_weight: float = 1.0) -> np.ndarray:
    """KTS with automatic choice of the number of change points: features are L2-normalised and
    compared with a linear kernel; among 0..``max_changes`` change points, the number m minimising
    scatter / T + w m / (2T) (log(T / m) + 1) is chosen (the penalty of the original code, with
    kernel values at most 1). Returns the change points."""
    x = np.asarray(features, float)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    T = len(x)
    best, best_points = math.inf, np.array([], int)
    for m, (points, scatter) in enumerate(segment(x @ x.T, max_changes)):
        penalty = 0.0 if m == 0 else penalty_weight * m / (2 * T) * (math.log(T / m) + 1)
        if scatter / T + penalty < best:
            best, best_points = scatter / T + penalty, points
    return best_points


def bounds_from_changes(changes: np.ndarray, length: int) -> np.ndarray:
    """Segment bounds [0, c1, c2, ..., T] from change points."""
    return np.r_[0, np.asarray(changes, int), length]


def knapsack(values, weights, capacity: int) -> list[int]:
    """0/1 knapsack by dynamic programming: the indices of the items of maximal total value
    whose integer weights sum to at most ``capacity``."""
    n = len(values)
    best = np.zeros((n + 1, capacity + 1))
    for k in range(1, n + 1):
        w, v = int(weights[k - 1]), float(values[k - 1])
        best[k] = best[k - 1]
        if w <= capacity:
            best[k, w:] = np.maximum(best[k - 1, w:], best[k - 1, :capacity + 1 - w] + v)
    chosen, c = [], capacity
    for k in range(n, 0, -1):
        if best[k, c] != best[k - 1, c]:
            chosen.append(k - 1)
            c -= int(weights[k - 1])
    return sorted(chosen)


def summarise(scores: np.ndarray, bounds: np.ndarray, budget: float = 0.15) -> np.ndarray:
    """The summary as a 0/1 vector over frames: shots scored by their mean frame score, picked
    by a knapsack within ``budget`` of the video's length."""
    scores = np.asarray(scores, float)
    lengths = np.diff(bounds)
    shot_scores = [scores[a:b].mean() for a, b in zip(bounds[:-1], bounds[1:])]
    picked = knapsack(shot_scores, lengths, int(math.floor(budget * len(scores))))
    summary = np.zeros(len(scores))
    for s in picked:
        summary[bounds[s]:bounds[s + 1]] = 1
    return summary


def f_score(summary: np.ndarray, reference: np.ndarray) -> float:
    """F1 of the overlap between a 0/1 summary and a 0/1 reference summary (frames)."""
    overlap = float((summary * reference).sum())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / summary.sum(), overlap / reference.sum()
    return 2 * precision * recall / (precision + recall)
