"""Projected gradient descent under an l-infinity budget (Madry et al. 2018), in plain torch.

Inputs may carry any leading shape: (B, ...) for one model or (R, B, ...) for an ensemble of R
models trained side by side; the objective is summed, so each model's gradient is its own.
"""
from __future__ import annotations

from typing import Callable

import torch


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float, low: float = 0.0,
                 high: float = 1.0) -> torch.Tensor:
    """Clip into the eps-ball around x, then into the valid pixel range."""
    return torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), low, high)


def random_start(x: torch.Tensor, eps: float, kind: "str | torch.Tensor" = "uniform",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform noise in the eps-ball (PGD-AT) or 0.001-scaled Gaussian noise (TRADES).

    ``kind`` may be a boolean tensor over the leading (ensemble) axis: True = Gaussian.
    """
    uniform = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    if isinstance(kind, str):
        if kind == "uniform":
            return uniform
        if kind == "gaussian":
            return 0.001 * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        raise ValueError(f"unknown random start {kind!r}")
    gaussian = 0.001 * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    mask = kind.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, gaussian, uniform)


def pgd_linf(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float,
             step: float, steps: int, start: "str | torch.Tensor | None" = "uniform",
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Maximise ``objective(x_adv)`` (a scalar) by signed-gradient ascent inside the eps-ball.

    Returns a detached tensor with ``|x_adv - x| <= eps`` and values in [0, 1].
    """
    x = x.detach()
    x_adv = x if start is None else project_linf(x + random_start(x, eps, start, generator), x, eps)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        grad, = torch.autograd.grad(objective(x_adv), x_adv)
        x_adv = project_linf(x_adv.detach() + step * grad.sign(), x, eps)
    return x_adv.detach()
