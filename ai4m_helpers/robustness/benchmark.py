"""How fast is our adversarial-training epoch? Against ART's trainer and against a bare loop.

All three train the same architecture on the same data with the same PGD (steps, step size, eps,
random start, batch size), for whole epochs, after one warm-up epoch, with the device synchronised
before the clock is read.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from .attacks import pgd_linf
from ..many_models import ModelStack
from .train import Recipe, TrainConfig, adversarial_step_loss, RecipeWeights


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], None], device, repeats: int) -> float:
    fn()  # warm-up: allocator, kernels, cuDNN heuristics
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def _quietly(fit, *args):
    """ART's trainer always draws tqdm bars (widgets in a notebook); silence them for the timing."""
    from unittest import mock

    from art.defences.trainer import adversarial_trainer

    with mock.patch.object(adversarial_trainer, "tqdm", lambda it, **_: it), \
            mock.patch.object(adversarial_trainer, "trange", lambda n, **_: range(n)):
        fit(*args)


def bare_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, opt) -> None:
    """The textbook PGD-AT epoch, written out with nothing around it."""
    loss_fn = nn.CrossEntropyLoss()
    perm = torch.randperm(len(y), device=x.device)
    for i in range(0, len(y), cfg.batch_size):
        idx = perm[i:i + cfg.batch_size]
        xb, yb = x[idx], y[idx]
        x_adv = pgd_linf(lambda xa: loss_fn(model(xa), yb), xb, cfg.eps, cfg.train_step_size,
                         cfg.train_steps)
        loss = loss_fn(model(x_adv), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def helpers_epoch(ens: ModelStack, x, y, cfg: TrainConfig, opt, weights) -> None:
    """One epoch through the chapter's trainer step (the same code `train_recipes` runs)."""
    n = len(y)
    perms = torch.stack([torch.randperm(n, device=x.device) for _ in range(ens.size)])
    for i in range(0, n, cfg.batch_size):
        idx = perms[:, i:i + cfg.batch_size]
        loss = adversarial_step_loss(ens, weights, x[idx], y[idx], cfg)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()


def compare_epoch_speed(make_model: Callable[[], nn.Module], x: np.ndarray, y: np.ndarray,
                        cfg: TrainConfig, device="cpu", repeats: int = 2, num_classes: int = 10) -> dict:
    """Seconds per epoch for ART's AdversarialTrainerMadryPGD, a bare loop, and our trainer."""
    from art.defences.trainer import AdversarialTrainerMadryPGD

    from ..art_tools import art_classifier

    xt = torch.tensor(x, device=device)
    yt = torch.tensor(y, device=device)

    torch.manual_seed(0)
    art_model = make_model().to(device)
    art_opt = torch.optim.SGD(art_model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    clf = art_classifier(art_model, tuple(x.shape[1:]), num_classes, device, art_opt)
    trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=1, batch_size=cfg.batch_size, eps=cfg.eps,
                                         eps_step=cfg.train_step_size, max_iter=cfg.train_steps)
    art_s = _timed(lambda: _quietly(trainer.fit, x, y), device, repeats)

    torch.manual_seed(0)
    bare_model = make_model().to(device)
    bare_opt = torch.optim.SGD(bare_model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    bare_s = _timed(lambda: bare_epoch(bare_model, xt, yt, cfg, bare_opt), device, repeats)

    ens = ModelStack.from_seeds(make_model, [0], device)
    opt = torch.optim.SGD(ens.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    weights = RecipeWeights([Recipe()], device)
    ours_s = _timed(lambda: helpers_epoch(ens, xt, yt, cfg, opt, weights), device, repeats)
    return {"art_s_per_epoch": art_s, "bare_s_per_epoch": bare_s, "ours_s_per_epoch": ours_s,
            "speedup_vs_art": art_s / ours_s, "fraction_of_bare_speed": bare_s / ours_s,
            "images_per_epoch": int(len(y)), "batch_size": cfg.batch_size, "device": str(device)}
