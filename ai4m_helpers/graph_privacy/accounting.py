"""Privacy accounting for GAP and ProGAP: one noise multiplier σ shared by every mechanism of a
method, found by root search so that the whole composition spends exactly the target ε.

- Edge level: only the K aggregations (or ProGAP's L NAP steps) touch edges. K Gaussian
  mechanisms with multiplier σ compose exactly into one Gaussian of μ = √K / σ (μ-GDP), whose
  privacy profile is known in closed form (Balle & Wang 2018):
  δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2).
- Node level: the encoder's and classifier's DP-SGD runs (Poisson-subsampled Gaussians) and the
  aggregations are composed in Rényi DP, summed over integer orders α, and converted to (ε, δ).

The tests check both against Google's ``dp-accounting`` (PLD and RDP accountants).
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

ORDERS = np.arange(2, 257)          # integer Rényi orders: the subsampled-Gaussian sum is exact on them
SIGMA_RANGE = (1e-3, 1e4)


# ---------------------------------------------------------------- edge level: exact Gaussian


def gaussian_delta(epsilon: float, mu: float) -> float:
    """δ(ε) of a μ-GDP mechanism (the exact Gaussian privacy profile)."""
    from scipy.special import log_ndtr, ndtr

    if mu <= 0:
        return 0.0
    a, b = -epsilon / mu + mu / 2, -epsilon / mu - mu / 2
    return float(max(ndtr(a) - math.exp(epsilon + log_ndtr(b)), 0.0))


def gaussian_epsilon(mu: float, delta: float) -> float:
    """The smallest ε with δ(ε) ≤ ``delta`` for a μ-GDP mechanism."""
    from scipy.optimize import brentq

    if mu <= 0 or gaussian_delta(0.0, mu) <= delta:
        return 0.0
    hi = 1.0
    while gaussian_delta(hi, mu) > delta:
        hi *= 2
    return float(brentq(lambda e: gaussian_delta(e, mu) - delta, 0.0, hi, xtol=1e-12, rtol=1e-12))


def edge_epsilon(sigma: float, steps: int, delta: float) -> float:
    """ε of ``steps`` Gaussian aggregations with multiplier σ (sensitivity folded into σ)."""
    if sigma == 0:
        return math.inf
    return gaussian_epsilon(math.sqrt(steps) / sigma, delta)


# ---------------------------------------------------------------- node level: Rényi DP


def rdp_gaussian(sigma: float, orders=ORDERS) -> np.ndarray:
    """RDP of the Gaussian mechanism with multiplier σ: α / (2σ²)."""
    return np.asarray(orders, float) / (2 * sigma ** 2)


@functools.lru_cache(maxsize=8)
def _log_binomials(orders: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log C(α, k) for every order α (rows) and k = 0..max α (columns), -inf beyond k = α."""
    from scipy.special import gammaln

    alpha = np.asarray(orders)[:, None]
    k = np.arange(alpha.max() + 1)[None, :]
    log_c = gammaln(alpha + 1) - gammaln(k + 1) - gammaln(np.maximum(alpha - k, 0) + 1)
    return np.where(k <= alpha, log_c, -np.inf), alpha, k


def rdp_subsampled_gaussian(q: float, sigma: float, orders=ORDERS) -> np.ndarray:
    """RDP of the Poisson-subsampled Gaussian at integer orders (Mironov, Talwar & Zhang 2019):
    ε(α) = log Σ_k C(α,k) (1−q)^(α−k) q^k exp((k² − k) / (2σ²)) / (α − 1), every order at once."""
    from scipy.special import logsumexp

    if q >= 1:
        return rdp_gaussian(sigma, orders)
    log_c, alpha, k = _log_binomials(tuple(int(a) for a in orders))
    log_terms = log_c + (alpha - k) * math.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * sigma ** 2)
    return logsumexp(log_terms, axis=1) / (alpha[:, 0] - 1)


def rdp_to_epsilon(rdp: np.ndarray, delta: float, orders=ORDERS) -> float:
    """(ε, δ) from RDP: min over α of rdp(α) + log((α−1)/α) − (log δ + log α)/(α − 1)
    (Balle et al. 2020; tighter than the classic rdp + log(1/δ)/(α−1))."""
    a = np.asarray(orders, float)
    eps = rdp + np.log((a - 1) / a) - (math.log(delta) + np.log(a)) / (a - 1)
    return float(max(np.min(eps), 0.0))


@dataclasses.dataclass(frozen=True)
class DpSgdRun:
    """One DP-SGD training: its Poisson sampling rate q (Opacus: 1 / ⌈training nodes / batch⌉)
    and its steps."""

    q: float
    steps: int


def node_rdp(sigma: float, sgd_runs: tuple[DpSgdRun, ...], aggregations: int, orders=ORDERS) -> np.ndarray:
    """RDP of a node-level method: its DP-SGD runs and its aggregations, one σ for all."""
    total = aggregations * rdp_gaussian(sigma, orders)
    steps_by_rate: dict[float, int] = {}
    for run in sgd_runs:                   # runs at one sampling rate compose as one longer run
        steps_by_rate[run.q] = steps_by_rate.get(run.q, 0) + run.steps
    for q, steps in steps_by_rate.items():
        total = total + steps * rdp_subsampled_gaussian(q, sigma, orders)
    return total


def node_epsilon(sigma: float, sgd_runs: tuple[DpSgdRun, ...], aggregations: int, delta: float) -> float:
    if sigma == 0:
        return math.inf
    return rdp_to_epsilon(node_rdp(sigma, sgd_runs, aggregations), delta)


# ---------------------------------------------------------------- calibration


def calibrate(epsilon_of_sigma, target: float) -> float:
    """The σ at which ``epsilon_of_sigma(σ)`` equals ``target`` (Brent's method on log σ); 0 for
    ε = ∞ (no noise). Refuses a target out of reach within SIGMA_RANGE."""
    from scipy.optimize import brentq

    if math.isinf(target):
        return 0.0
    lo, hi = (math.log(s) for s in SIGMA_RANGE)
    f = lambda log_s: epsilon_of_sigma(math.exp(log_s)) - target   # noqa: E731  (decreasing in σ)
    if f(hi) > 0 or f(lo) < 0:
        raise ValueError(f"no σ in {SIGMA_RANGE} gives ε = {target}")
    return math.exp(brentq(f, lo, hi, xtol=1e-10, rtol=1e-12))


def edge_sigma(epsilon: float, delta: float, aggregations: int) -> float:
    """One σ for ``aggregations`` edge-level Gaussian steps spending exactly ε (closed form in μ)."""
    return calibrate(lambda s: edge_epsilon(s, aggregations, delta), epsilon)


def node_sigma(epsilon: float, delta: float, sgd_runs: tuple[DpSgdRun, ...], aggregations: int) -> float:
    return calibrate(lambda s: node_epsilon(s, sgd_runs, aggregations, delta), epsilon)
