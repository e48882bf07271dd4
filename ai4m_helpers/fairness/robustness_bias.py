"""Robustness bias (Nanda et al. 2021): is one group closer to the decision boundary?

For each image, the smallest perturbation that flips the detector's decision is estimated with an
attack: ART's DeepFool (L2) and a minimum-budget search over ART's PGD (L2 or L-infinity), both
white box (gradients), and ART's HopSkipJump (L2, black box: labels only).
Both give upper bounds on the true distance. An attack that fails leaves the distance unknown
beyond the search; it is counted as +inf (robust at every tau) and the per-group success rates are
reported beside the curves, since failures bias them. A distance of NaN marks an image left out
(one the detector got wrong: its "distance" would measure how far it is from being right).
"""
from __future__ import annotations

import numpy as np

from ..art_tools import quiet_progress

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # renamed in NumPy 2


def attack_distances(attack, classify, x: np.ndarray, norm: float = 2,
                     **generate_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Distance (L2 or, with ``norm=np.inf``, L-infinity) to the adversarial example and whether
    the decision flipped, per image."""
    with quiet_progress():
        x_adv = attack.generate(x=x.astype(np.float32), **generate_kwargs)
    flipped = classify(x_adv) != classify(x)
    dist = np.linalg.norm((x_adv - x).reshape(len(x), -1), ord=norm, axis=1)
    return np.where(flipped, dist, np.inf), flipped


def deepfool(classifier, max_iter: int = 20, overshoot: float = 0.02, batch_size: int = 128):
    """ART's DeepFool. It usually crosses the boundary of these detectors within a few steps; ART
    keeps stepping a whole batch while any image in it has not flipped, so a lower ``max_iter``
    than ART's 100 saves time and changes no flipped distance."""
    from art.attacks.evasion import DeepFool

    with quiet_progress():
        return DeepFool(classifier, max_iter=max_iter, epsilon=overshoot, nb_grads=2,
                        batch_size=batch_size, verbose=False)


def pgd_min_distance(classifier, x: np.ndarray, labels: np.ndarray, eps_max: float = 8.0,
                     bisections: int = 8, steps: int = 10, batch_size: int = 256, norm: float = 2,
                     eps_min: float | None = None) -> np.ndarray:
    """Smallest budget (in ``norm``: 2 or ``np.inf``) at which ART's PGD flips the decision, found
    by bisection per image. ``classifier`` is an ART PyTorch classifier; each image gets its own
    budget (ART takes a per-sample ``eps``). +inf where even ``eps_max`` does not flip it.

    With ``eps_min`` the bisection is geometric, between ``eps_min`` and ``eps_max``: the same
    relative resolution for small and large distances (``eps_min`` is returned for images that
    flip below it); without, it is arithmetic from 0."""
    from art.attacks.evasion import ProjectedGradientDescentPyTorch

    x = x.astype(np.float32)
    one_hot = np.eye(classifier.nb_classes, dtype=np.float32)[labels]

    def flips(eps: np.ndarray) -> np.ndarray:
        budget = eps.astype(np.float32).reshape(-1, *([1] * (x.ndim - 1)))
        with quiet_progress():
            attack = ProjectedGradientDescentPyTorch(
                classifier, norm=norm, eps=budget, eps_step=2.5 * budget / steps, max_iter=steps,
                num_random_init=0, batch_size=batch_size, verbose=False)
            x_adv = attack.generate(x, y=one_hot)
        return classifier.predict(x_adv, batch_size=batch_size).argmax(1) != labels

    geometric = eps_min is not None
    lo = np.full(len(x), float(eps_min) if geometric else 0.0)
    hi = np.full(len(x), float(eps_max))
    reachable = flips(hi)
    for _ in range(bisections):
        mid = np.sqrt(lo * hi) if geometric else (lo + hi) / 2
        f = flips(mid)
        hi, lo = np.where(f, mid, hi), np.where(f, lo, mid)
    return np.where(reachable, hi, np.inf)


def hop_skip_jump(black_box, max_iter: int = 10, max_eval: int = 200, init_eval: int = 20):
    from art.attacks.evasion import HopSkipJump

    with quiet_progress():
        return HopSkipJump(black_box, targeted=False, norm=2, max_iter=max_iter, max_eval=max_eval,
                           init_eval=init_eval, init_size=100, verbose=False)


def starting_points(x_pool: np.ndarray, labels_pool: np.ndarray, labels: np.ndarray,
                    rng: np.random.Generator, groups_pool: np.ndarray | None = None,
                    groups: np.ndarray | None = None) -> np.ndarray:
    """For a decision-based attack, one image of the *other* predicted class per target, of the
    same group where ``groups`` are given (a start from another group would be farther away for
    the minority, and an unconverged attack would report that as a gap): random noise is rarely
    classified as genuine by a seam detector, so HopSkipJump's own random start fails; starting
    from a real image of the other class is the usual remedy."""
    out = np.empty((len(labels),) + x_pool.shape[1:], dtype=np.float32)
    for i, label in enumerate(labels):
        other = labels_pool != label
        if groups is not None and (other & (groups_pool == groups[i])).any():
            other &= groups_pool == groups[i]
        out[i] = x_pool[rng.choice(np.flatnonzero(other))]
    return out


def survival(d: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """R(tau) = P(d > tau) over the measured images (NaN: not measured): the share still
    classified the same at budget tau."""
    d = d[~np.isnan(d)]
    return (d[None, :] > taus[:, None]).mean(1)


def max_gap(d: np.ndarray, group: np.ndarray) -> float:
    """max_tau |R_1(tau) - R_0(tau)|, exactly: the two-sample Kolmogorov-Smirnov statistic of the
    groups' distances (failed attacks, +inf, count as beyond every budget; NaN is left out)."""
    keep = ~np.isnan(d)
    d, group = d[keep], group[keep]
    a, b = np.sort(d[group == 0]), np.sort(d[group == 1])
    if not len(a) or not len(b):
        return float("nan")
    taus = np.concatenate([[0.0], np.unique(d[np.isfinite(d)])])
    r0 = 1 - np.searchsorted(a, taus, side="right") / len(a)
    r1 = 1 - np.searchsorted(b, taus, side="right") / len(b)
    return float(np.abs(r1 - r0).max())


def max_gap_under_relabelling(d: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """:func:`max_gap` for each row of ``labels`` (relabellings of the images' groups, e.g.
    permutations), all at once: one matrix product over the distinct distances."""
    keep = ~np.isnan(d)
    d, labels = d[keep], labels[:, keep]
    taus = np.concatenate([[0.0], np.unique(d[np.isfinite(d)])])
    alive = (d[None, :] > taus[:, None]).astype(np.float64)            # taus x images
    ones = labels / labels.sum(1, keepdims=True)
    zeros = (1 - labels) / (1 - labels).sum(1, keepdims=True)
    return np.abs(alive @ (ones - zeros).T).max(0)


def robustness_bias(d: np.ndarray, group: np.ndarray, taus: np.ndarray) -> dict:
    """Curves per group on the grid ``taus`` (for figures), the exact largest gap, the
    median-distance ratio (unprivileged / privileged), the signed area between the curves, and
    the attacks' success rates; images with NaN distance (not measured) are left out."""
    r0, r1 = survival(d[group == 0], taus), survival(d[group == 1], taus)
    keep = ~np.isnan(d)
    finite = np.isfinite(d)
    med = [float(np.median(d[keep & (group == g)])) if (keep & (group == g)).any() else np.nan for g in (0, 1)]
    return {"taus": taus, "curve_privileged": r0, "curve_unprivileged": r1,
            "max_rb": max_gap(d, group),
            "median_privileged": med[0], "median_unprivileged": med[1],
            "median_ratio": med[1] / med[0] if med[0] > 0 else np.nan,
            "area_priv_minus_unpriv": float(_trapezoid(r0 - r1, taus)),
            "success_privileged": float(finite[keep & (group == 0)].mean()),
            "success_unprivileged": float(finite[keep & (group == 1)].mean())}
