"""Training the detector: Adam on cross-entropy, one seed fixing weights and batch order; and the
defended detector, adversarially trained with ART's trainer."""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from ..art_tools import numpy_global_seed, quiet_progress
from .models import DetectorCNN, white_box

LR = 2e-3


def train_detector(x: np.ndarray, y: np.ndarray, epochs: int, seed: int, device="cpu", width: int = 16,
                   batch_size: int = 128, lr: float = LR, start: DetectorCNN | None = None) -> DetectorCNN:
    """A new detector, or with ``start`` a copy of that one trained further (a fresh optimiser,
    as the adversarial fine-tuning below uses)."""
    import copy

    torch.manual_seed(seed)
    model = DetectorCNN(x.shape[-1], width).to(device) if start is None else copy.deepcopy(start).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.tensor(x, device=device), torch.tensor(y, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(yt), generator=gen, device=device).split(batch_size):
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@contextlib.contextmanager
def _trainer_without_progress_bars():
    """ART's trainer draws tqdm bars whatever it is told: text on a terminal, live widgets in a
    notebook (whose state would be saved into an executed chapter). Plain iteration instead."""
    from unittest import mock

    from art.defences.trainer import adversarial_trainer

    with mock.patch.object(adversarial_trainer, "tqdm", lambda iterable, *a, **k: iterable), \
            mock.patch.object(adversarial_trainer, "trange", lambda n, *a, **k: range(n)):
        yield


def adversarially_fine_tune(model: DetectorCNN, x: np.ndarray, y: np.ndarray, epochs: int, seed: int,
                            device="cpu", eps: float = 0.004, steps: int = 3, ratio: float = 0.5,
                            batch_size: int = 128, lr: float = LR) -> DetectorCNN:
    """A defended copy of a trained detector: ``epochs`` more epochs with ART's
    ``AdversarialTrainer``, in which a share ``ratio`` of every batch is replaced by its L-infinity
    PGD adversarial example (budget ``eps``, ``steps`` steps, one random start, against the current
    model): the defence of Madry et al., mixed with clean images as in Goodfellow et al., started
    from the undefended weights. Its control is the same number of epochs on clean images
    (:func:`train_detector` with ``start``): the two then differ by the defence alone."""
    import copy

    from art.attacks.evasion import ProjectedGradientDescent
    from art.defences.trainer import AdversarialTrainer

    torch.manual_seed(seed)
    model = copy.deepcopy(model).train()
    classifier = white_box(model, x.shape[-1], device, torch.optim.Adam(model.parameters(), lr=lr))
    with quiet_progress(), numpy_global_seed(seed), _trainer_without_progress_bars():
        pgd = ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=2.5 * eps / steps,
                                       max_iter=steps, num_random_init=1, batch_size=batch_size, verbose=False)
        trainer = AdversarialTrainer(classifier, pgd, ratio=ratio)
        trainer.fit(x.astype(np.float32), np.eye(2, dtype=np.float32)[y], nb_epochs=epochs, batch_size=batch_size)
    return model.eval()
