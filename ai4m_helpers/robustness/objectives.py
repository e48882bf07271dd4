"""Adversarial-training objectives and the regularisers that can be added to any of them.

SRC (self-residual calibration) is reconstructed from the paper's abstract, because the full text
and code are not public: the residual between the true-class logits of a natural input and of its
adversarial version, r = z(x)_y - z(x')_y, is driven towards zero with the pinball (quantile)
loss of level tau. tau = 0.5 gives half the absolute residual.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pinball(u: torch.Tensor, tau: "float | torch.Tensor") -> torch.Tensor:
    """Quantile loss rho_tau(u) = max(tau * u, (tau - 1) * u), elementwise."""
    return torch.maximum(tau * u, (tau - 1) * u)


def true_class_logit(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y for each sample; logits (..., B, C), labels broadcastable to (..., B)."""
    y = y.expand(logits.shape[:-1])
    return logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)


def self_residual(logits_nat: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
                  detach_natural: bool = False) -> torch.Tensor:
    """r = z(x)_y - z(x')_y per sample (usually >= 0: the attack lowers the true logit)."""
    nat = true_class_logit(logits_nat, y)
    if detach_natural:
        nat = nat.detach()
    return nat - true_class_logit(logits_adv, y)


def src_loss(logits_nat, logits_adv, y, tau: "float | torch.Tensor" = 0.5,
             detach_natural: bool = False) -> torch.Tensor:
    """Mean pinball loss of the self-residual over the batch (last axis but one).

    With an ensemble axis in front, returns one value per member.
    """
    r = self_residual(logits_nat, logits_adv, y, detach_natural)
    if isinstance(tau, torch.Tensor) and tau.dim() == 1 and r.dim() == 2:
        tau = tau.unsqueeze(-1)
    return pinball(r, tau).mean(-1)


def alp_loss(logits_nat: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """Adversarial logit pairing (Kannan et al. 2018): mean squared l2 distance of the logits."""
    return (logits_nat - logits_adv).pow(2).sum(-1).mean(-1)


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the batch axis; keeps a leading ensemble axis."""
    y = y.expand(logits.shape[:-1])
    per_sample = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                 reduction="none")
    return per_sample.view(y.shape).mean(-1)


def trades_kl(logits_nat: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """KL(p(x) || p(x')) averaged over the batch, as in TRADES (Zhang et al. 2019)."""
    log_p_nat = F.log_softmax(logits_nat.float(), -1)
    log_p_adv = F.log_softmax(logits_adv.float(), -1)
    return (log_p_nat.exp() * (log_p_nat - log_p_adv)).sum(-1).mean(-1)
