"""GAP's and ProGAP's modules, as the papers' code builds them (hidden 16, SELU).

- :class:`Encoder`: a 2-layer MLP ``g`` on node features and a linear head; after training, the
  embedding is ``rownorm(g(x))``. Trained alone it is also the features-only MLP baseline.
- :class:`HopClassifier`: one base MLP per hop of the cached aggregations, concatenated,
  row-normalised, (BatchNorm), dropout, SELU, a linear head.
- :class:`Progressive`: ProGAP's stages; stage i trains base_0..base_i on [x_0..x_i], joins them by
  concatenation (jumping knowledge), row-normalises and reads them with a new linear head.

BatchNorm is used at edge level and left out at node level, where DP-SGD needs per-example
gradients that BatchNorm would mix.
"""
from __future__ import annotations

import torch
from torch import nn

from .aggregation import rownorm


class MLP(nn.Module):
    """Linear layers with (BatchNorm), dropout and SELU between them; with ``plain_last`` the
    last layer is left linear. GAP's code orders each step BatchNorm, dropout, SELU; ProGAP's
    (``activation_first``) SELU, BatchNorm, dropout."""

    def __init__(self, dims: list[int], batch_norm: bool, dropout: float, plain_last: bool = True,
                 activation_first: bool = False):
        super().__init__()
        self.activation_first = activation_first
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        n_act = len(self.layers) - int(plain_last)
        self.bns = nn.ModuleList(nn.BatchNorm1d(d) for d in dims[1:1 + n_act]) if batch_norm else None
        self.dropout = nn.Dropout(dropout)
        self.n_act = n_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.n_act:
                x = torch.selu(x) if self.activation_first else x
                x = self.bns[i](x) if self.bns is not None else x
                x = self.dropout(x)
                x = x if self.activation_first else torch.selu(x)
        return x


class _Head(nn.Module):
    """rownorm, (BatchNorm), dropout, SELU, then a linear layer to the classes."""

    def __init__(self, width: int, classes: int, batch_norm: bool, dropout: float):
        super().__init__()
        self.bn = nn.BatchNorm1d(width) if batch_norm else None
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = rownorm(h)
        h = self.bn(h) if self.bn is not None else h
        return self.out(torch.selu(self.dropout(h)))


class Encoder(nn.Module):
    def __init__(self, features: int, classes: int, hidden: int = 16, layers: int = 2,
                 batch_norm: bool = True, dropout: float = 0.0):
        super().__init__()
        self.g = MLP([features] + [hidden] * layers, batch_norm, dropout, plain_last=True)
        self.head = _Head(hidden, classes, batch_norm, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.g(x))

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.eval()
        return rownorm(self.g(x))


class HopClassifier(nn.Module):
    """Input: the cached stack (nodes, hops + 1, dims)."""

    def __init__(self, hops: int, dims: int, classes: int, hidden: int = 16, base_layers: int = 1,
                 batch_norm: bool = True, dropout: float = 0.0):
        super().__init__()
        self.bases = nn.ModuleList(MLP([dims] + [hidden] * base_layers, batch_norm, dropout, plain_last=True)
                                   for _ in range(hops + 1))
        self.head = _Head(hidden * (hops + 1), classes, batch_norm, dropout)

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([base(stack[:, k]) for k, base in enumerate(self.bases)], dim=-1))


class Progressive(nn.Module):
    """ProGAP's model; ``add_stage`` grows it by one base and one head. ``forward(*xs)`` takes the
    stage inputs [x_0..x_i] and returns the logits of the current stage's head."""

    def __init__(self, features: int, classes: int, hidden: int = 16, base_layers: int = 1,
                 batch_norm: bool = True, dropout: float = 0.0):
        super().__init__()
        self.features, self.classes, self.hidden = features, classes, hidden
        self.base_layers, self.batch_norm, self.dropout = base_layers, batch_norm, dropout
        self.bases, self.heads = nn.ModuleList(), nn.ModuleList()
        self.add_stage()

    @property
    def stage(self) -> int:
        return len(self.bases) - 1

    def add_stage(self) -> None:
        dims = self.features if not self.bases else self.hidden
        self.bases.append(MLP([dims] + [self.hidden] * self.base_layers, self.batch_norm, self.dropout,
                              plain_last=False, activation_first=True))
        for head in self.heads:                 # earlier heads are no longer read: keep them still
            head.requires_grad_(False)
        self.heads.append(nn.Linear(self.hidden * len(self.bases), self.classes))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """Each base ends in its activation (SELU, BatchNorm, dropout); the joined embedding is
        row-normalised and read by the stage's linear head."""
        return self.heads[-1](rownorm(torch.cat([base(x) for base, x in zip(self.bases, xs)], dim=-1)))

    @torch.no_grad()
    def embed(self, *xs: torch.Tensor) -> torch.Tensor:
        """The current stage's embedding (its newest base's output), input of the next NAP."""
        self.eval()
        return self.bases[-1](xs[-1])
