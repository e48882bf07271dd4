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

from .explain import mask_fragments
from .train import score

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


def discoverability(model, features: np.ndarray, bounds: np.ndarray, black: np.ndarray,
                    order: np.ndarray, batch: bool) -> np.ndarray:
    """τ at k = 1..3 after masking fragments in ``order`` (most to least influential for Disc+,
    least to most for Disc−)."""
    original = score(model, features)
    order = np.asarray(order)
    if len(order) < max(KS):
        return np.full(len(KS), np.nan)
    new = score(model, mask_fragments(features, bounds, masked_patterns(order, len(bounds) - 1, batch), black))
    return np.array([kendall(original, row) for row in new])


def sanity_violation(disc_plus: np.ndarray, disc_minus: np.ndarray) -> float:
    """Share of k at which masking the bottom items changed the scores more (lower τ) than
    masking the top items."""
    return float(np.mean(np.asarray(disc_minus) < np.asarray(disc_plus)))


def fisher_mean(taus) -> float:
    """Mean of arctanh τ (τ clipped inside (−1, 1)); report tanh of it to read it as a τ."""
    t = np.clip(np.asarray(taus, float), -0.999999, 0.999999)
    return float(np.arctanh(t).mean())
