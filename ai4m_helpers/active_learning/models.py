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
    """inputs -> ReLU hidden layer -> dropout -> output logits (or the hidden features). The
    dropout rate is a buffer, so that stacked members may each have their own."""

    def __init__(self, inputs: int, hidden: int, outputs: int, dropout: float = 0.01):
        super().__init__()
        self.hidden = nn.Linear(inputs, hidden)
        self.out = nn.Linear(hidden, outputs)
        self.register_buffer("drop", torch.tensor(float(dropout)))

    def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor:
        # addmm rather than the layers' own call: with 2 to 4 inputs (XOR, Iris), some CPU BLAS
        # paths of F.linear are a thousand times slower; the arithmetic is the same.
        h = torch.relu(torch.addmm(self.hidden.bias, x, self.hidden.weight.t()))
        if features:
            return h
        if self.training:   # inverted dropout at this member's rate
            h = h * (torch.rand_like(h) >= self.drop) / (1 - self.drop)
        return torch.addmm(self.out.bias, h, self.out.weight.t())


class StackedMLP:
    def __init__(self, seeds: list[int], inputs: int, hidden: int, outputs: int,
                 dropout: float | list[float] = 0.01, device="cpu"):
        """One member per seed; members with the same seed start from the same weights. ``dropout``
        is one rate for all, or one per member."""
        rates = dropout if isinstance(dropout, (list, tuple)) else [dropout] * len(seeds)
        models = []
        for seed, rate in zip(seeds, rates):
            torch.manual_seed(seed)
            models.append(MLP(inputs, hidden, outputs, rate).to(device))
        self.stack = ModelStack(models)
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
        return self.stack.member_view(m)(x, **kwargs)

    def member_logits(self, x: torch.Tensor, m: int, dropout: bool = False) -> torch.Tensor:
        """Member m's logits (N, outputs), with gradients."""
        self.stack.train(dropout)
        return self._member(m, x)

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
