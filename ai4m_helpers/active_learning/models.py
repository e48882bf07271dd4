"""Many small MLPs trained side by side, each on its own labelled set (one per strategy x seed).

The KAL set-up: one hidden ReLU layer, dropout (which MC-dropout strategies reuse), sigmoid
outputs, BCE loss, AdamW on the full labelled batch, and a warm start: the network is never
re-initialised between active-learning rounds. Weights are stacked along a leading member axis
and multiplied with batched matmuls, so M members cost about one on a GPU.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class StackedMLP:
    def __init__(self, seeds: list[int], inputs: int, hidden: int, outputs: int, dropout: float = 0.01,
                 device="cpu"):
        """One member per seed; members with the same seed start from the same weights."""
        shapes = {"w1": ((inputs, hidden), inputs), "b1": ((1, hidden), inputs),
                  "w2": ((hidden, outputs), hidden), "b2": ((1, outputs), hidden)}
        tensors = {name: [] for name in shapes}
        for seed in seeds:
            gen = torch.Generator().manual_seed(seed)
            for name, (shape, fan_in) in shapes.items():  # PyTorch's default Linear initialisation
                bound = 1 / math.sqrt(fan_in)
                tensors[name].append((torch.rand(shape, generator=gen) * 2 - 1) * bound)
        for name, values in tensors.items():
            setattr(self, name, torch.stack(values).to(device).requires_grad_())
        self.members, self.dropout = len(seeds), dropout

    def parameters(self):
        return [self.w1, self.b1, self.w2, self.b2]

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, N, d) or (N, d) shared by all -> hidden activations (M, N, h)."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, *x.shape)
        return torch.relu(torch.baddbmm(self.b1, x, self.w1))

    def logits(self, x: torch.Tensor, dropout: bool = False) -> torch.Tensor:
        h = self.hidden(x)
        if dropout and self.dropout > 0:
            h = F.dropout(h, self.dropout, training=True)
        return torch.baddbmm(self.b2, h, self.w2)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Sigmoid outputs (M, N, outputs), dropout off."""
        return torch.sigmoid(self.logits(x))

    @torch.no_grad()
    def member_hidden(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """Hidden activations (N, h) of member m alone."""
        return torch.relu(torch.addmm(self.b1[m], x, self.w1[m]))

    @torch.no_grad()
    def member_mc_predict(self, x: torch.Tensor, m: int, passes: int) -> torch.Tensor:
        """Member m's sigmoid outputs with dropout on, ``passes`` times: (passes, N, outputs)."""
        h = self.member_hidden(x, m)
        return torch.stack([torch.sigmoid(torch.addmm(self.b2[m], F.dropout(h, self.dropout, training=True),
                                                      self.w2[m])) for _ in range(passes)])


class Trainer:
    """AdamW on the full labelled batch of every member; its state persists across rounds."""

    def __init__(self, model: StackedMLP, lr: float, weight_decay: float = 0.01):
        self.model = model
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def fit(self, x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
        """x (M, n, d), y (M, n, outputs) in {0, 1}; returns the last mean loss."""
        for _ in range(epochs):
            loss = F.binary_cross_entropy_with_logits(self.model.logits(x, dropout=True), y)
            self.opt.zero_grad(set_to_none=True)
            # Each member's loss is its own mean; summing keeps members independent.
            (loss * self.model.members).backward()
            self.opt.step()
        return float(loss.detach())
