"""Training every member at once: AdamW on the full labelled batch, BCE loss, and a warm start:
as in the reference code, the network persists across active-learning rounds and each round
starts a new optimiser."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .models import StackedMLP


class Trainer:
    """AdamW on the full labelled batch of every member, a new optimiser for every fit (round)."""

    def __init__(self, model: StackedMLP, lr: float, weight_decay: float = 0.01):
        self.model, self.lr, self.weight_decay = model, lr, weight_decay

    def fit(self, x: torch.Tensor, y: torch.Tensor, epochs: int, rules=None) -> float:
        """x (M, n, d), y (M, n, outputs) in {0, 1}; returns the last mean loss. ``rules``, a
        :class:`RulePenalty`, adds the rules' mean violation on pool inputs to the members it
        weighs (the rules-as-loss baseline)."""
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        for _ in range(epochs):
            bce = F.binary_cross_entropy_with_logits(self.model.logits(x, dropout=True), y, reduction="none")
            per_member = bce.mean(dim=(1, 2))
            if rules is not None:
                per_member = per_member + rules(self.model)
            opt.zero_grad(set_to_none=True)
            # Each member's loss is its own mean; summing keeps members independent.
            per_member.sum().backward()
            opt.step()
        return float(per_member.detach().mean())


class RulePenalty:
    """The rules as a training loss (semantic-loss style): weight x the mean violation of every
    rule on pool inputs (labelled or not: the rules need no label), for the members with a weight
    (the others pay nothing and cost nothing). Each call draws ``sample`` of ``x`` (N, d) afresh."""

    def __init__(self, kb, x: torch.Tensor, weights: torch.Tensor, sample: int = 256, seed: int = 0):
        self.kb, self.x, self.weights, self.sample = kb, x, weights, sample
        self.members = torch.nonzero(weights).flatten().tolist()
        self.generator = torch.Generator(device=x.device).manual_seed(seed)

    def __call__(self, model: StackedMLP) -> torch.Tensor:
        idx = torch.randint(0, len(self.x), (min(self.sample, len(self.x)),), generator=self.generator,
                            device=self.x.device)
        x = self.x[idx]
        # The penalised members alone (each through its own view of the stack), the rules
        # evaluated once for all of them.
        probs = torch.sigmoid(torch.stack([model.member_logits(x, m, dropout=True) for m in self.members]))
        viol = self.kb.violations(x, probs).mean(dim=(1, 2))
        members = torch.as_tensor(self.members, device=x.device)
        return torch.zeros(model.members, device=x.device).index_put((members,), self.weights[members] * viol)
