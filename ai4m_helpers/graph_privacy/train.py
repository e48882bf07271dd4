"""Training a node classifier on cached inputs: full-batch Adam (no privacy cost, or
post-processing of private inputs) or DP-SGD through Opacus (Poisson sampling, per-example
clipping at C = 1, Gaussian noise σC). Both keep the weights of the epoch with the best
validation accuracy, as the papers' trainer does (the validation labels are outside the
guarantee, as in the papers), unless told to keep the last epoch.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..runtime import replicate_seeds
from .accounting import DpSgdRun


@dataclasses.dataclass
class Fitted:
    model: torch.nn.Module
    val_acc: float
    test_acc: float
    best_epoch: int
    inputs: list | None = None      # what the model reads, kept by the caller for later scoring


@torch.no_grad()
def accuracy(model, inputs: Sequence[torch.Tensor], y: torch.Tensor, mask: torch.Tensor) -> float:
    model.eval()
    return float((model(*(x[mask] for x in inputs)).argmax(-1) == y[mask]).float().mean())


@torch.no_grad()
def per_node_loss(model, inputs: Sequence[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every node (what a loss-threshold membership attack reads)."""
    model.eval()
    return F.cross_entropy(model(*inputs), y, reduction="none")


def _best(model, inputs, y, masks, epoch, best: dict, state, keep_best: bool) -> None:
    """Keep the weights of the best validation epoch so far (or, without ``keep_best``, of the
    last one)."""
    val = accuracy(model, inputs, y, masks[1])
    if val > best["val"] or not keep_best:
        best.update(val=val, epoch=epoch, state={k: v.detach().clone() for k, v in state().items()})


def fit_plain(model, inputs: Sequence[torch.Tensor], y: torch.Tensor, masks, epochs: int, lr: float,
              keep_best: bool = True) -> Fitted:
    """Full-batch Adam on the training nodes for ``epochs`` epochs."""
    train = masks[0]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    best = {"val": -1.0}
    batch = [x[train] for x in inputs]
    for epoch in range(1, epochs + 1):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(*batch), y[train]).backward()
        opt.step()
        _best(model, inputs, y, masks, epoch, best, model.state_dict, keep_best)
    model.load_state_dict(best["state"])
    return Fitted(model, best["val"], accuracy(model, inputs, y, masks[2]), best["epoch"])


def sgd_plan(n_train: int, batch: int, epochs: int) -> DpSgdRun:
    """What a DP-SGD run costs, as Opacus samples it: each example drawn with rate
    q = 1 / ceil(n / batch), and int(1 / q) batches per epoch (one fewer than ceil(n / batch)
    where the division rounds down)."""
    q = 1.0 / max(1, math.ceil(n_train / batch))
    return DpSgdRun(q=q, steps=epochs * int(1 / q))


def fit_dp(model, inputs: Sequence[torch.Tensor], y: torch.Tensor, masks, epochs: int, lr: float,
           batch: int, sigma: float, seed: int, keep_best: bool = True, clip: float = 1.0) -> Fitted:
    """DP-SGD with Opacus at noise multiplier σ (the caller's accountant chose it)."""
    import warnings

    with warnings.catch_warnings():
        # Seeded noise is on purpose (runs repeat); Opacus' backward hooks fire on input-free layers.
        warnings.filterwarnings("ignore", message=".*Secure RNG.*")
        warnings.filterwarnings("ignore", message=".*Full backward hook.*")
        return _dp_sgd(model, inputs, y, masks, epochs, lr, batch, sigma, seed, keep_best, clip)


def _dp_sgd(model, inputs, y, masks, epochs, lr, batch, sigma, seed, keep_best, clip) -> Fitted:
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    train = masks[0]
    model.train()                       # Opacus checks the mode before wrapping
    data = TensorDataset(*(x[train] for x in inputs), y[train])
    sampling, noise = replicate_seeds(seed, 2)
    loader = DataLoader(data, batch_size=batch, generator=torch.Generator().manual_seed(sampling))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    engine = PrivacyEngine()
    private, opt, loader = engine.make_private(
        module=model, optimizer=opt, data_loader=loader, noise_multiplier=sigma, max_grad_norm=clip,
        poisson_sampling=True, noise_generator=torch.Generator().manual_seed(noise))
    best = {"val": -1.0}
    for epoch in range(1, epochs + 1):
        private.train()
        for *xs, target in loader:     # a Poisson batch may be empty: the step still adds its noise
            opt.zero_grad()
            F.cross_entropy(private(*xs), target).backward()
            opt.step()
        _best(model, inputs, y, masks, epoch, best, model.state_dict, keep_best)
    private._close()                    # detach Opacus' hooks: the model may be trained again (ProGAP)
    model.load_state_dict(best["state"])
    return Fitted(model, best["val"], accuracy(model, inputs, y, masks[2]), best["epoch"])
