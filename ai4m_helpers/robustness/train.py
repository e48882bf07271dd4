"""Adversarial training of an ensemble of recipes, with per-epoch validation and best/last tracking.

A *recipe* is one training configuration: a base objective (PGD-AT or TRADES) plus an optional
regulariser (SRC or the ALP control) and a seed. Recipes differ only in per-member loss weights, so
any mix of them trains together in one batched pass.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Sequence

import numpy as np
import torch

from .attacks import pgd_linf
from ..many_models import ModelStack
from .objectives import alp_loss, cross_entropy, src_loss, trades_kl

BASES = ("pgd_at", "trades")
REGULARISERS = ("none", "src", "alp")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One adversarial-training configuration."""

    base: str = "pgd_at"       # "pgd_at": CE on adversarial inputs; "trades": CE + beta * KL
    reg: str = "none"          # "src", "alp" or "none"
    lam: float = 0.0           # weight of the regulariser
    tau: float = 0.5           # SRC quantile level
    beta: float = 6.0          # TRADES trade-off
    seed: int = 0
    label: str = ""

    def __post_init__(self):
        if self.base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {self.base!r}")
        if self.reg not in REGULARISERS:
            raise ValueError(f"reg must be one of {REGULARISERS}, got {self.reg!r}")
        if not 0 < self.tau < 1:
            raise ValueError(f"tau must lie in (0, 1), got {self.tau}")

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        base = {"pgd_at": "PGD-AT", "trades": f"TRADES(β={self.beta:g})"}[self.base]
        reg = {"none": "", "src": f" + SRC(λ={self.lam:g}, τ={self.tau:g})",
               "alp": f" + ALP(λ={self.lam:g})"}[self.reg]
        return base + reg


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: tuple = (0.5, 0.75)   # learning-rate x0.1 at these fractions of training
    eps: float = 0.1
    train_steps: int = 5
    train_step_size: float = 0.05
    eval_steps: int = 10
    eval_step_size: float = 0.025
    eval_every: int = 5
    eval_batch: int = 1024
    amp: bool = False                 # bf16 autocast (pays only for larger models on a GPU)
    detach_natural: bool = False      # stop SRC's gradient through the natural logits


@dataclasses.dataclass
class History:
    recipes: list
    eval_epochs: list
    val_clean: list                   # per evaluation: array (R,)
    val_robust: list
    train_loss: list                  # per epoch: array (R,)
    best_epoch: np.ndarray
    best_robust: np.ndarray
    best_params: dict
    last_params: dict
    seconds_per_epoch: float = 0.0

    def curves(self) -> dict[str, np.ndarray]:
        return {"epoch": np.array(self.eval_epochs), "val_clean": np.stack(self.val_clean),
                "val_robust": np.stack(self.val_robust)}


class RecipeWeights:
    """Per-member loss weights as tensors of shape (R,)."""

    def __init__(self, recipes: Sequence[Recipe], device):
        def vec(values, dtype=torch.float32):
            return torch.tensor(values, dtype=dtype, device=device)
        self.trades = vec([r.base == "trades" for r in recipes], torch.bool)
        self.beta = vec([r.beta if r.base == "trades" else 0.0 for r in recipes])
        self.src = vec([r.lam if r.reg == "src" else 0.0 for r in recipes])
        self.tau = vec([r.tau for r in recipes])
        self.alp = vec([r.lam if r.reg == "alp" else 0.0 for r in recipes])
        self.any_trades = bool(self.trades.any())
        self.needs_natural = self.any_trades or bool(self.src.any()) or bool(self.alp.any())


def _autocast(device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def adversarial_step_loss(ens: ModelStack, w: RecipeWeights, x: torch.Tensor, y: torch.Tensor,
                          cfg: TrainConfig, generator=None) -> torch.Tensor:
    """Per-member training loss (R,) on a batch x (R, B, ...), y (R, B)."""
    device = x.device
    with _autocast(device, cfg.amp):
        logits_nat = ens(x) if w.needs_natural else None
    nat_ref = logits_nat.detach() if logits_nat is not None else None

    def attack_objective(x_adv):
        with _autocast(device, cfg.amp):
            z = ens(x_adv)
        ce = cross_entropy(z, y)
        if w.any_trades:
            ce = torch.where(w.trades, trades_kl(nat_ref, z), ce)
        return ce.sum()

    start = w.trades if w.any_trades else "uniform"
    x_adv = pgd_linf(attack_objective, x, cfg.eps, cfg.train_step_size, cfg.train_steps, start, generator)
    with _autocast(device, cfg.amp):
        logits_adv = ens(x_adv)
    loss = cross_entropy(logits_adv, y)
    if w.needs_natural:
        trades_loss = cross_entropy(logits_nat, y) + w.beta * trades_kl(logits_nat, logits_adv)
        loss = torch.where(w.trades, trades_loss, loss)
        loss = loss + w.src * src_loss(logits_nat, logits_adv, y, w.tau, cfg.detach_natural)
        loss = loss + w.alp * alp_loss(logits_nat, logits_adv)
    return loss


@torch.no_grad()
def clean_accuracy(ens: ModelStack, x: torch.Tensor, y: torch.Tensor, params=None,
                   batch: int = 1024) -> np.ndarray:
    """Accuracy of every member on shared inputs x (N, ...): array (R,)."""
    correct = torch.zeros(ens.size, device=x.device)
    for i in range(0, len(y), batch):
        pred = ens.forward_shared(x[i:i + batch], params).argmax(-1)
        correct += (pred == y[i:i + batch]).sum(-1)
    return (correct / len(y)).cpu().numpy()


def pgd_adversarial(ens: ModelStack, x: torch.Tensor, y: torch.Tensor, eps: float, step: float, steps: int,
                    params=None, batch: int = 1024, generator=None) -> torch.Tensor:
    """PGD (CE, random start) against every member: adversarial inputs (R, N, ...)."""
    out = []
    for i in range(0, len(y), batch):
        xb = x[i:i + batch].unsqueeze(0).expand(ens.size, *x[i:i + batch].shape)
        yb = y[i:i + batch]
        out.append(pgd_linf(lambda xa: cross_entropy(ens(xa, params), yb).sum(),
                            xb, eps, step, steps, "uniform", generator))
    return torch.cat(out, 1)


def robust_accuracy(ens: ModelStack, x, y, eps, step, steps, params=None, batch: int = 1024,
                    generator=None) -> np.ndarray:
    """Accuracy under PGD of every member: array (R,)."""
    x_adv = pgd_adversarial(ens, x, y, eps, step, steps, params, batch, generator)
    with torch.no_grad():
        pred = torch.cat([ens(x_adv[:, i:i + batch], params).argmax(-1)
                          for i in range(0, len(y), batch)], 1)
    return (pred == y).float().mean(-1).cpu().numpy()


def train_recipes(ens: ModelStack, recipes: Sequence[Recipe], x_train, y_train, x_val, y_val,
                  cfg: TrainConfig, seed: int = 0, progress=None) -> History:
    """Adversarially train every member on its recipe; track validation accuracy and checkpoints.

    "Best" is the epoch of highest validation robust accuracy (PGD, ``cfg.eval_steps`` steps),
    chosen per member; "last" is the final epoch.
    """
    if len(recipes) != ens.size:
        raise ValueError(f"{len(recipes)} recipes for an ensemble of {ens.size}")
    device = x_train.device
    w = RecipeWeights(recipes, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    opt = torch.optim.SGD(ens.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, [max(1, int(m * cfg.epochs)) for m in cfg.milestones], gamma=0.1)
    n = len(y_train)
    hist = History(list(recipes), [], [], [], [], np.full(ens.size, -1), np.full(ens.size, -1.0),
                   ens.snapshot(), {})
    epochs = range(1, cfg.epochs + 1)
    start = time.perf_counter()
    # Batch order comes from the recipe's seed alone, so recipes of one seed see the same batches
    # (common random numbers: a paired comparison then removes the order's share of the noise).
    seeds = [r.seed for r in recipes]
    order = {s: torch.Generator(device=device).manual_seed(int(s)) for s in dict.fromkeys(seeds)}
    for epoch in (progress(epochs) if progress else epochs):
        perm = {s: torch.randperm(n, generator=g, device=device) for s, g in order.items()}
        perms = torch.stack([perm[s] for s in seeds])
        epoch_loss = torch.zeros(ens.size, device=device)
        for i in range(0, n, cfg.batch_size):
            idx = perms[:, i:i + cfg.batch_size]
            loss = adversarial_step_loss(ens, w, x_train[idx], y_train[idx], cfg, gen)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            epoch_loss += loss.detach() * idx.shape[1] / n
        sched.step()
        hist.train_loss.append(epoch_loss.cpu().numpy())
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            _evaluate_epoch(ens, hist, epoch, x_val, y_val, cfg, gen)
    hist.seconds_per_epoch = (time.perf_counter() - start) / cfg.epochs
    hist.last_params = ens.snapshot()
    return hist


def _evaluate_epoch(ens, hist: History, epoch, x_val, y_val, cfg: TrainConfig, gen) -> None:
    clean = clean_accuracy(ens, x_val, y_val, batch=cfg.eval_batch)
    robust = robust_accuracy(ens, x_val, y_val, cfg.eps, cfg.eval_step_size, cfg.eval_steps,
                             batch=cfg.eval_batch, generator=gen)
    hist.eval_epochs.append(epoch)
    hist.val_clean.append(clean)
    hist.val_robust.append(robust)
    improved = robust > hist.best_robust
    if improved.any():
        mask = torch.as_tensor(improved, device=x_val.device)
        for name, value in ens.params.items():
            keep = mask.view(-1, *([1] * (value.dim() - 1)))
            hist.best_params[name] = torch.where(keep, value.detach(), hist.best_params[name])
        hist.best_epoch[improved] = epoch
        hist.best_robust[improved] = robust[improved]
