"""Evaluation beyond the training attack: calibration error, and ART's APGD as an independent attack."""
from __future__ import annotations

import numpy as np
from torch import nn

from ..art_tools import art_classifier, quiet_progress


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE (Guo et al. 2017): the |accuracy - confidence| gap, weighted over equal-width bins."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def art_apgd_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, eps: float, num_classes: int = 10,
                      max_iter: int = 50, restarts: int = 1, batch_size: int = 512,
                      device="cpu") -> dict:
    """Accuracy under ART's AutoProjectedGradientDescent (Croce & Hein 2020, CE loss, l-inf).

    APGD adapts its step size and needs no tuning, so it checks that robustness measured with our
    own PGD is not an artefact of a weak attack.
    """
    with quiet_progress():
        from art.attacks.evasion import AutoProjectedGradientDescent

    clf = art_classifier(model.to(device), tuple(x.shape[1:]), num_classes, device)
    attack = AutoProjectedGradientDescent(estimator=clf, norm=np.inf, eps=eps, eps_step=2 * eps,
                                          max_iter=max_iter, targeted=False, nb_random_init=restarts,
                                          batch_size=batch_size, loss_type="cross_entropy", verbose=False)
    x = x.astype(np.float32)
    with quiet_progress():
        x_adv = attack.generate(x=x, y=y).astype(np.float32)
    pred = clf.predict(x_adv, batch_size=batch_size).argmax(1)
    return {"accuracy": float((pred == y).mean()),
            "max_perturbation": float(np.abs(x_adv - x).max()),
            "clean_accuracy": float((clf.predict(x, batch_size=batch_size).argmax(1) == y).mean())}
