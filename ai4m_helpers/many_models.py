"""Train many small models as one: weights stacked along a leading axis, calls mapped with vmap.

A small model is launch-bound on a GPU, so R seeds x configurations in one batched pass cost about
as much as one. Each member keeps its own parameters and its own optimiser state (SGD, Adam and
AdamW update every weight from its own gradient alone), so the members stay independent: the loss
to minimise is the sum of the per-member losses. Chapters 1, 2 and 7 train their models this way.

- :class:`ModelStack` takes ``nn.Module`` s of one architecture (any, GPT-2 included) and calls
  them as one, with per-member random numbers (dropout) where the model draws any.
- :class:`PerMemberLR` gives each member its own learning rate under any of those optimisers.
"""
from __future__ import annotations

import copy
from typing import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils._pytree import tree_map


class ModelStack:
    """R models of one architecture as one.

    ``tied`` names parameters that are the same tensor as another one (``{"lm_head.weight":
    "transformer.wte.weight"}`` for GPT-2): they are stacked once, and the gradient of both uses
    lands on the one kept."""

    def __init__(self, models: Sequence[nn.Module], tied: Mapping[str, str] | None = None):
        self.size = len(models)
        self.tied = dict(tied or {})
        self.params, self.buffers = stack_module_state(list(models))
        for alias in self.tied:
            self.params.pop(alias, None)
        self._template = copy.deepcopy(models[0]).cpu()
        # The module whose code runs every call, holding no weights of its own.
        self.skeleton = copy.deepcopy(models[0]).to("meta")

    @classmethod
    def from_seeds(cls, make_model: Callable[[], nn.Module], seeds: Sequence[int], device="cpu",
                   tied: Mapping[str, str] | None = None) -> "ModelStack":
        """One member per seed, each initialised after ``torch.manual_seed(seed)``; members with
        the same seed start from the same weights."""
        models = []
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(make_model().to(device))
        return cls(models, tied)

    # -- calling ----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "ModelStack":
        """Training mode (dropout on) or not, for every member."""
        self.skeleton.train(mode)
        return self

    def eval(self) -> "ModelStack":
        return self.train(False)

    def call_member(self, params: dict, buffers: dict, x: torch.Tensor, **kwargs):
        """One member's forward from its own weights (what vmap maps over)."""
        full = {**params, **{alias: params[source] for alias, source in self.tied.items()}}
        return functional_call(self.skeleton, (full, buffers), (x,), kwargs)

    def __call__(self, x: torch.Tensor, params: dict | None = None, **kwargs):
        """x: (R, B, ...) -> outputs (R, B, ...); ``params`` defaults to the live weights. ``x`` may
        be a tuple of such tensors (a model taking several inputs gets the tuple). Keyword arguments
        are shared by every member."""
        params = params or self.params
        if self.size == 1:  # a lone model needs no vmap (and pays none of its overhead)
            out = self.call_member(self.member_params(0, params), self.member_params(0, self.buffers),
                                   tree_map(lambda t: t[0], x), **kwargs)
            return _add_member_axis(out)
        one = lambda p, b, xi: self.call_member(p, b, xi, **kwargs)  # noqa: E731
        return vmap(one, randomness="different")(params, self.buffers, x)

    def forward_shared(self, x: torch.Tensor, params: dict | None = None, **kwargs):
        """The same inputs (B, ...) through every member -> (R, B, ...)."""
        return self(tree_map(lambda t: t.unsqueeze(0).expand(self.size, *t.shape), x), params,
                    **kwargs)

    # -- weights ----------------------------------------------------------------------------
    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def member_params(self, r: int, tensors: dict | None = None) -> dict[str, torch.Tensor]:
        """Member r's slice of stacked tensors (views, no copy)."""
        return {k: v[r] for k, v in (self.params if tensors is None else tensors).items()}

    def member_view(self, r: int) -> nn.Module:
        """Member r as a module whose weights *are* its slices of the stack (views, so training
        the stack moves them, and gradients through it reach the stack). Calling one member this
        way costs what the plain module costs; built once per member."""
        cache = self.__dict__.setdefault("_views", {})
        if r not in cache:
            module = copy.deepcopy(self._template).to(next(iter(self.params.values())).device)
            for name, stacked in {**self.params, **self.buffers}.items():
                *path, leaf = name.split(".")
                owner = module.get_submodule(".".join(path))
                owner._parameters.pop(leaf, None)
                owner._buffers.pop(leaf, None)
                setattr(owner, leaf, stacked[r])
            for alias, source in self.tied.items():
                *path, leaf = alias.split(".")
                module.get_submodule(".".join(path))._parameters.pop(leaf, None)
                setattr(module.get_submodule(".".join(path)), leaf, self.params[source][r])
            cache[r] = module
        return cache[r].train(self.skeleton.training)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.params.items()}

    def member(self, r: int, params: dict | None = None) -> nn.Module:
        """A stand-alone ``nn.Module`` holding member r's weights (for ART, Captum, saving)."""
        model = copy.deepcopy(self._template).to(next(iter(self.params.values())).device)
        self.load_member(model, r, params)
        return model.eval()

    def load_member(self, model: nn.Module, r: int, params: dict | None = None) -> nn.Module:
        """Copy member r's weights into ``model`` (tied parameters follow their source)."""
        source = self.params if params is None else params
        state = {**{k: v[r].detach().clone() for k, v in source.items()},
                 **{k: v[r].clone() for k, v in self.buffers.items()}}
        model.load_state_dict(state, strict=not self.tied)
        if self.tied and hasattr(model, "tie_weights"):
            model.tie_weights()
        return model


def _add_member_axis(out):
    """What vmap would have returned for a lone member: a leading axis on every tensor."""
    if isinstance(out, torch.Tensor):
        return out.unsqueeze(0)
    if isinstance(out, (tuple, list)):
        return type(out)(_add_member_axis(o) for o in out)
    raise TypeError(f"cannot add a member axis to {type(out).__name__}: return tensors or tuples")


class PerMemberLR:
    """A learning rate per member for an optimiser over a :class:`ModelStack`'s weights.

    SGD (with momentum and weight decay), Adam and AdamW change each weight by an amount linear in
    the learning rate. So the optimiser steps with its own rate (its schedulers work as usual) and
    each member's change is then scaled by its factor: the member trains as if its learning rate
    were the optimiser's times ``factors[r]``. Set ``factors`` before any step (a zero freezes a
    member)."""

    def __init__(self, optimizer: torch.optim.Optimizer, factors: torch.Tensor):
        self.optimizer = optimizer
        self.factors = factors

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        before = [p.detach().clone() for p in params]
        self.optimizer.step()
        for p, b in zip(params, before):
            scale = self.factors.to(p.dtype).view(-1, *[1] * (p.dim() - 1))
            p.copy_(torch.lerp(b, p, scale))
