"""DP-FedAvg with client-level privacy (McMahan et al. 2018): each client's update is clipped on
the client (the server cannot clip what it cannot read), the server averages with a fixed
denominator m and adds Gaussian noise of standard deviation σ = z·S/m, and an accountant turns
the noise multiplier z, the client sampling rate q and the number of rounds into (ε, δ).

The guarantee protects a whole client (all of one broadcaster's recordings), not one clip.
"""
from __future__ import annotations

import math

import numpy as np

# Rényi orders searched for the best conversion to (ε, δ): finer and wider than Opacus' default,
# so that the optimum is never at an end of the range at these noise levels. With client
# sampling (q < 1) only integer orders: dp-accounting's series for fractional ones may not converge.
ORDERS = (tuple(1 + x / 1000 for x in range(1, 10)) + tuple(1 + x / 100 for x in range(1, 1000))
          + tuple(float(a) for a in range(11, 512)) + tuple(float(a) for a in np.geomspace(512, 1e5, 40)[1:]))
INTEGER_ORDERS = tuple(float(a) for a in range(2, 512)) + tuple(float(round(a)) for a in np.geomspace(512, 1e5, 40)[1:])


def _orders(sample_rate: float) -> list[float]:
    return list(ORDERS if sample_rate >= 1 else INTEGER_ORDERS)

def noise_std(noise_multiplier: float, clip: float, sampled_clients: int) -> float:
    """σ = z·S/m, the noise on the average of m clipped updates (sensitivity S/m)."""
    return noise_multiplier * clip / sampled_clients


def clip_update(weights: np.ndarray, reference: np.ndarray, clip: float) -> tuple[np.ndarray, float]:
    """``reference + Δ·min(1, S/‖Δ‖)`` with Δ = weights - reference (flat clipping of the whole
    update), and ‖Δ‖ before clipping."""
    update = weights - reference
    norm = float(np.linalg.norm(update))
    if not np.isfinite(norm):       # a diverged client sends no update: NaN would pass any clip
        return reference.copy(), norm
    return reference + update * min(1.0, clip / norm if norm > 0 else 1.0), norm


def epsilon(noise_multiplier: float, rounds: int, sample_rate: float, delta: float) -> float:
    """ε after ``rounds`` releases of the subsampled Gaussian mechanism, by Opacus' RDP
    accountant. With every client in every round (q = 1) nothing is amplified and ε grows like
    √rounds / z."""
    if noise_multiplier <= 0:
        return math.inf
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(noise_multiplier, sample_rate, rounds)]
    return float(acc.get_epsilon(delta, alphas=_orders(sample_rate)))


def epsilon_check(noise_multiplier: float, rounds: int, sample_rate: float, delta: float) -> dict:
    """The same ε from Google's dp-accounting: its RDP accountant (the same bound, computed by
    other code) and its privacy-loss-distribution accountant (tight)."""
    import dp_accounting as dpa
    from dp_accounting.pld import PLDAccountant
    from dp_accounting.rdp import RdpAccountant

    if noise_multiplier <= 0:
        return {"rdp": math.inf, "pld": math.inf}
    event = dpa.GaussianDpEvent(noise_multiplier)
    if sample_rate < 1:
        event = dpa.PoissonSampledDpEvent(sample_rate, event)
    rdp = RdpAccountant(_orders(sample_rate))
    rdp.compose(event, rounds)
    pld = PLDAccountant(value_discretization_interval=1e-3)
    pld.compose(event, rounds)
    return {"rdp": float(rdp.get_epsilon(delta)), "pld": float(pld.get_epsilon(delta))}


def noise_for(target_epsilon: float, rounds: int, sample_rate: float, delta: float) -> float:
    """The noise multiplier whose ε (Opacus' RDP accountant) equals ``target_epsilon``."""
    from scipy.optimize import brentq

    if not target_epsilon > 0 or math.isinf(target_epsilon):
        raise ValueError("the target ε must be positive and finite")
    import warnings

    with warnings.catch_warnings():    # the search visits extreme z, whose optimal order is at an end
        warnings.simplefilter("ignore", UserWarning)
        return float(brentq(lambda z: epsilon(z, rounds, sample_rate, delta) - target_epsilon, 1e-2, 1e3,
                            xtol=1e-6))
