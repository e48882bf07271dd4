"""Train many small models as one: weights stacked along a leading axis, forward through vmap.

A small model is launch-bound on a GPU, so R seeds x configurations in one batched pass cost about
as much as one. Each member keeps its own parameters and optimiser state (SGD is elementwise), so
the members stay independent: the loss is a sum of per-member losses.
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class Ensemble:
    """R copies of one architecture, each initialised from its own seed."""

    def __init__(self, make_model: Callable[[], nn.Module], seeds: Sequence[int], device="cpu"):
        models = []
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(make_model().to(device))
        self.size = len(models)
        self.params, self.buffers = stack_module_state(models)
        self._template = copy.deepcopy(models[0])
        self._skeleton = copy.deepcopy(models[0]).to("meta")

    def _call_one(self, params, buffers, x):
        return functional_call(self._skeleton, (params, buffers), (x,))

    def __call__(self, x: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """x: (R, B, ...) -> logits (R, B, C); ``params`` defaults to the live weights."""
        params = params or self.params
        if self.size == 1:  # a lone model needs no vmap (and pays none of its overhead)
            one = lambda tensors: {k: v[0] for k, v in tensors.items()}
            return self._call_one(one(params), one(self.buffers), x[0]).unsqueeze(0)
        return vmap(self._call_one)(params, self.buffers, x)

    def forward_shared(self, x: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """The same inputs (B, ...) through every member -> (R, B, C)."""
        return self(x.unsqueeze(0).expand(self.size, *x.shape), params)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.params.items()}

    def member(self, r: int, params: dict | None = None) -> nn.Module:
        """A stand-alone nn.Module holding member r's weights (for ART, Captum, saving)."""
        model = copy.deepcopy(self._template)
        source = params or self.params
        model.load_state_dict({**{k: v[r].detach().clone() for k, v in source.items()},
                               **{k: v[r].clone() for k, v in self.buffers.items()}})
        return model.eval()
