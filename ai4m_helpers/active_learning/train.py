"""Training every member at once: AdamW on the full labelled batch, BCE loss, and a warm start
(the optimiser and the network persist across active-learning rounds)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .models import StackedMLP


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
