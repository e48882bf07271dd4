"""CA-SUM (Apostolidis et al., ICMR 2022): concentrated attention with a block-diagonal mask,
the attentive uniqueness (entropy) and diversity-weighted dependency of every frame, and a
two-layer regressor to frame importance scores in [0, 1].

The official model takes one video at a time; this one takes a batch of sequences of one length
(B, T, d), so that the hundreds of perturbed copies of a video an explanation needs run in one
forward pass. For B = 1 it computes exactly what the official layer computes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def block_mask(length: int, block: int, device=None) -> torch.Tensor:
    """(T, T) block-diagonal 0/1 mask of non-overlapping ``block`` x ``block`` blocks (the last
    one cut to the sequence)."""
    idx = torch.arange(length, device=device) // block
    return (idx[:, None] == idx[None, :]).float()


class ConcentratedAttention(nn.Module):
    def __init__(self, dim: int, hidden: int, block: int):
        super().__init__()
        self.block = block
        self.wq = nn.Linear(dim, hidden, bias=False)
        self.wk = nn.Linear(dim, hidden, bias=False)
        self.wv = nn.Linear(dim, hidden, bias=False)
        self.out = nn.Linear(hidden + 2, dim, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, d) -> (weighted features (B, T, d), concentrated attention (B, T, T))."""
        length = x.shape[1]
        unit = F.normalize(x, p=2, dim=-1)
        diversity = 1 - unit @ unit.transpose(1, 2)                 # on the input features
        energies = self.wq(x) @ self.wk(x).transpose(1, 2)
        attention = torch.softmax(energies, dim=-1)
        entropy = -(attention * torch.log_softmax(energies, dim=-1)).sum(-1) / math.log(length)
        entropy = F.normalize(entropy, p=1, dim=-1)                 # uniqueness, L1-normalised over frames
        keep = block_mask(length, self.block, x.device)
        outside = 1 - keep
        div_out = diversity * outside
        dependency = (div_out * attention * outside).sum(-1) / div_out.sum(-1).clamp_min(1e-12)
        concentrated = attention * keep + dependency[:, None, :] * keep  # a[i, j] += dep_j within the block
        y = concentrated @ self.wv(x)
        traits = torch.stack([entropy, dependency], dim=-1).detach()
        return self.out(torch.cat([y, traits], dim=-1)), concentrated


class CASUM(nn.Module):
    """Frame features (B, T, d) -> frame scores (B, T) in [0, 1], and the attention (B, T, T)."""

    def __init__(self, dim: int, hidden: int, block: int, dropout: float = 0.5):
        super().__init__()
        self.attention = ConcentratedAttention(dim, hidden, block)
        self.linear_1 = nn.Linear(dim, dim)
        self.linear_2 = nn.Linear(dim, 1)
        self.drop = nn.Dropout(dropout)
        self.norm_y = nn.LayerNorm(dim, eps=1e-6)
        self.norm_linear = nn.LayerNorm(dim, eps=1e-6)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As the official solver initialises: Xavier-uniform weights with gain √2 (LayerNorm
        weights left at 1) and every bias 0.1, LayerNorm biases included."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.constant_(p, 0.1)
            elif "norm" not in name:
                nn.init.xavier_uniform_(p, gain=math.sqrt(2.0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weighted, attention = self.attention(x)
        y = self.norm_y(self.drop(x + weighted))
        y = self.norm_linear(self.drop(torch.relu(self.linear_1(y))))
        return torch.sigmoid(self.linear_2(y)).squeeze(-1), attention
