"""Robustness bias (Nanda et al. 2021): is one group closer to the decision boundary?

For each image, the smallest L2 perturbation that flips the detector's decision is estimated with
an attack: ART's DeepFool and a PGD minimum-budget search (white box, gradients) and ART's
HopSkipJump (black box, labels only).
Both give upper bounds on the true distance. An attack that fails leaves the distance unknown
beyond the search; it is counted as +inf (robust at every tau) and the per-group success rates are
reported beside the curves, since failures bias them.
"""
from __future__ import annotations

import numpy as np

from ..art_tools import quiet_progress

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # renamed in NumPy 2


def attack_distances(attack, classify, x: np.ndarray, **generate_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """L2 distance to the adversarial example and whether the decision flipped, per image."""
    with quiet_progress():
        x_adv = attack.generate(x=x.astype(np.float32), **generate_kwargs)
    flipped = classify(x_adv) != classify(x)
    dist = np.linalg.norm((x_adv - x).reshape(len(x), -1), axis=1)
    return np.where(flipped, dist, np.inf), flipped


def deepfool(classifier, max_iter: int = 50, overshoot: float = 0.02, batch_size: int = 128):
    from art.attacks.evasion import DeepFool

    with quiet_progress():
        return DeepFool(classifier, max_iter=max_iter, epsilon=overshoot, nb_grads=2,
                        batch_size=batch_size, verbose=False)


def pgd_l2(model, x, target_other, eps, steps: int = 10):
    """L2 PGD that pushes each image away from its current label, with a per-image budget."""
    import torch
    import torch.nn.functional as F

    eps = eps.view(-1, *([1] * (x.dim() - 1)))
    delta = torch.zeros_like(x)
    step = 2.5 * eps / steps
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = -F.cross_entropy(model(x + delta), target_other)  # towards the other class
        grad, = torch.autograd.grad(loss, delta)
        g = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view_as(eps)
        delta = (delta.detach() + step * g)
        norm = delta.flatten(1).norm(dim=1).view_as(eps)
        delta = delta * torch.clamp(eps / norm.clamp_min(1e-12), max=1.0)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def pgd_min_distance(model, x: np.ndarray, labels: np.ndarray, eps_max: float = 8.0, bisections: int = 8,
                     steps: int = 10, device="cpu") -> np.ndarray:
    """Smallest L2 budget at which PGD flips the decision, found by bisection per image (a second
    white-box estimate beside DeepFool). +inf where even ``eps_max`` does not flip it."""
    import torch

    xt = torch.tensor(x, device=device)
    yt = torch.tensor(labels, device=device)
    other = 1 - yt                                     # binary detector: the other class
    lo = torch.zeros(len(x), device=device)
    hi = torch.full((len(x),), eps_max, device=device)

    def flips(eps):
        x_adv = pgd_l2(model, xt, other, eps, steps)
        with torch.no_grad():
            return model(x_adv).argmax(1) != yt

    reachable = flips(hi)
    for _ in range(bisections):
        mid = (lo + hi) / 2
        f = flips(mid)
        hi = torch.where(f, mid, hi)
        lo = torch.where(f, lo, mid)
    return torch.where(reachable, hi, torch.full_like(hi, float("inf"))).cpu().numpy()


def hop_skip_jump(black_box, max_iter: int = 10, max_eval: int = 200, init_eval: int = 20):
    from art.attacks.evasion import HopSkipJump

    with quiet_progress():
        return HopSkipJump(black_box, targeted=False, norm=2, max_iter=max_iter, max_eval=max_eval,
                           init_eval=init_eval, init_size=100, verbose=False)


def starting_points(x_pool: np.ndarray, labels_pool: np.ndarray, labels: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """For a decision-based attack, one image of the *other* predicted class per target: random
    noise is rarely classified as genuine by a seam detector, so HopSkipJump's own random start
    fails; starting from a real image of the other class is the usual remedy."""
    out = np.empty((len(labels),) + x_pool.shape[1:], dtype=np.float32)
    for i, label in enumerate(labels):
        out[i] = x_pool[rng.choice(np.flatnonzero(labels_pool != label))]
    return out


def survival(d: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """R(tau) = P(d > tau): the share of images still classified the same at budget tau."""
    return (d[None, :] > taus[:, None]).mean(1)


def robustness_bias(d: np.ndarray, group: np.ndarray, taus: np.ndarray) -> dict:
    """Curves per group, max_tau |R_1 - R_0|, where it peaks, the median-distance ratio
    (unprivileged / privileged), the signed area between the curves, and success rates."""
    r0, r1 = survival(d[group == 0], taus), survival(d[group == 1], taus)
    gap = np.abs(r1 - r0)
    finite = np.isfinite(d)
    med = [float(np.median(d[group == g])) for g in (0, 1)]
    return {"taus": taus, "curve_privileged": r0, "curve_unprivileged": r1,
            "max_rb": float(gap.max()), "tau_at_max": float(taus[gap.argmax()]),
            "median_privileged": med[0], "median_unprivileged": med[1],
            "median_ratio": med[1] / med[0] if med[0] > 0 else np.nan,
            "area_priv_minus_unpriv": float(_trapezoid(r0 - r1, taus)),
            "success_privileged": float(finite[group == 0].mean()),
            "success_unprivileged": float(finite[group == 1].mean())}


def more_vulnerable(summary: dict) -> int:
    """The group with the smaller median distance (1 = unprivileged)."""
    return int(summary["median_unprivileged"] < summary["median_privileged"])
