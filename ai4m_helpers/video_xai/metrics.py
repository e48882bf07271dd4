"""How good an explanation is, as the framework measures it: mask the items (fragments or
objects) an explanation ranks highest or lowest and see how much the summariser's frame scores
change, by Kendall's τ between the original and the new scores.

- Disc+ (k): τ after masking the top-k items; a good explanation gives a low τ (a large change);
- Disc− (k): τ after masking the bottom-k items; a good explanation gives a high τ;
- each one by one (only the k-th item masked) or in batch (items 1..k masked together);
- Sanity Violation: the share of k at which Disc− < Disc+ (the "least influential" items changed
  the scores more than the "most influential" ones); lower is better;
- averages over videos apply Fisher's transform, arctanh τ, before averaging.
"""
from __future__ import annotations

import numpy as np

from .train import score, score_masked

KS = (1, 2, 3)


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import kendalltau

    tau = kendalltau(a, b).statistic
    return 1.0 if not np.isfinite(tau) else float(tau)      # constant scores: nothing changed


def masked_patterns(order: np.ndarray, items: int, batch: bool) -> np.ndarray:
    """The keep-patterns (len(KS), items) that mask, for k = 1..3, the k-th item of ``order``
    alone (one by one) or its first k items (batch)."""
    patterns = np.ones((len(KS), items), int)
    for row, k in enumerate(KS):
        chosen = order[:k] if batch else order[k - 1:k]
        patterns[row, chosen] = 0
    return patterns


def discoverability(model, features: np.ndarray, bounds: np.ndarray, black: np.ndarray, orders,
                    batch: bool) -> np.ndarray:
    """τ at k = 1..3 after masking fragments in each of ``orders`` (one order, or a list of them;
    most to least influential for Disc+, least to most for Disc−): (3,) or (orders, 3). All the
    masked copies go through the summariser in one batch."""
    single = np.asarray(orders).ndim == 1
    orders = [np.asarray(o) for o in ([orders] if single else orders)]
    if any(len(o) < max(KS) for o in orders):
        out = np.full((len(orders), len(KS)), np.nan)
        return out[0] if single else out
    original = score(model, features)
    patterns = np.concatenate([masked_patterns(o, len(bounds) - 1, batch) for o in orders])
    new = score_masked(model, features, bounds, patterns, black)
    out = np.array([kendall(original, row) for row in new]).reshape(len(orders), len(KS))
    return out[0] if single else out


def sanity_violation(disc_plus: np.ndarray, disc_minus: np.ndarray) -> float:
    """Share of k at which masking the bottom items changed the scores more (lower τ) than
    masking the top items; a tie (as when a collapsed model's scores never change) counts half."""
    plus, minus = np.asarray(disc_plus), np.asarray(disc_minus)
    return float(np.mean((minus < plus) + 0.5 * (minus == plus)))


def fisher_mean(taus) -> float:
    """Mean of arctanh τ (τ clipped inside (−1, 1)); report tanh of it to read it as a τ."""
    t = np.clip(np.asarray(taus, float), -0.999999, 0.999999)
    return float(np.arctanh(t).mean())
