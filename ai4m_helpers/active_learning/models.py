"""Many small MLPs side by side, each on its own labelled set (one per strategy x seed x start).

The KAL set-up: one hidden ReLU layer, dropout (which MC-dropout strategies reuse), sigmoid
outputs. The members form one :class:`~ai4m_helpers.many_models.ModelStack`, so M members cost
about one on a GPU.
"""
from __future__ import annotations

import torch
from torch import nn

from ..many_models import ModelStack


class MLP(nn.Module):
    """inputs -> ReLU hidden layer -> dropout -> output logits (or the hidden features)."""

    def __init__(self, inputs: int, hidden: int, outputs: int, dropout: float = 0.01):
        super().__init__()
        self.hidden = nn.Linear(inputs, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, outputs)

    def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor:
        h = torch.relu(self.hidden(x))
        return h if features else self.out(self.dropout(h))


class StackedMLP:
    def __init__(self, seeds: list[int], inputs: int, hidden: int, outputs: int, dropout: float = 0.01,
                 device="cpu"):
        """One member per seed; members with the same seed start from the same weights."""
        self.stack = ModelStack.from_seeds(lambda: MLP(inputs, hidden, outputs, dropout), seeds, device)
        self.members = len(seeds)

    def parameters(self) -> list[torch.Tensor]:
        return self.stack.parameters()

    def _shared(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, N, d), or (N, d) shared by all members."""
        return x.unsqueeze(0).expand(self.members, *x.shape) if x.dim() == 2 else x

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden activations (M, N, h)."""
        return self.stack.eval()(self._shared(x), features=True)

    def logits(self, x: torch.Tensor, dropout: bool = False) -> torch.Tensor:
        return self.stack.train(dropout)(self._shared(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Sigmoid outputs (M, N, outputs), dropout off."""
        return torch.sigmoid(self.logits(x))

    def _member(self, m: int, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.stack.call_member(self.stack.member_params(m), self.stack.member_params(m, self.stack.buffers),
                                      x, **kwargs)

    @torch.no_grad()
    def member_predict(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """Member m's sigmoid outputs (N, outputs), dropout off."""
        self.stack.eval()
        return torch.sigmoid(self._member(m, x))

    @torch.no_grad()
    def member_hidden(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """Hidden activations (N, h) of member m alone."""
        return self._member(m, x, features=True)

    @torch.no_grad()
    def member_mc_predict(self, x: torch.Tensor, m: int, passes: int) -> torch.Tensor:
        """Member m's sigmoid outputs with dropout on, ``passes`` times: (passes, N, outputs)."""
        self.stack.train(True)
        return torch.stack([torch.sigmoid(self._member(m, x)) for _ in range(passes)])
