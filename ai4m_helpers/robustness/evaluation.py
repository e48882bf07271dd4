"""Evaluation beyond the training attack: calibration error, and two independent attacks from ART
(APGD, gradient based; Square, score based)."""
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


ATTACKS = ("apgd", "apgd-dlr", "square")
APGD_LOSS = {"apgd": "cross_entropy", "apgd-dlr": "difference_logits_ratio"}


class CropTo(nn.Module):
    """Crop an input back to ``size`` before the model: lets an attack work on a padded image."""

    def __init__(self, model: nn.Module, size: tuple[int, int]):
        super().__init__()
        self.model, self.size = model, size

    def forward(self, x):
        return self.model(x[..., :self.size[0], :self.size[1]])


def _art_attack(name: str, clf, eps: float, iterations: int, batch_size: int):
    with quiet_progress():
        from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack
    if name in APGD_LOSS:
        # Croce & Hein (2020): adapts its step size, needs no tuning; untargeted, with the
        # cross-entropy or the scale-free difference-of-logits-ratio loss (AutoAttack's two).
        return AutoProjectedGradientDescent(estimator=clf, norm=np.inf, eps=eps, eps_step=2 * eps,
                                            max_iter=iterations, targeted=False, nb_random_init=1,
                                            batch_size=batch_size, loss_type=APGD_LOSS[name],
                                            verbose=False)
    if name == "square":
        # Andriushchenko et al. (2020): random square updates, queries only the scores, so a model
        # whose gradients mislead PGD and APGD (gradient masking) cannot fool it.
        return SquareAttack(estimator=clf, norm=np.inf, eps=eps, max_iter=iterations, nb_restarts=1,
                            batch_size=batch_size, verbose=False)
    raise ValueError(f"attack must be one of {ATTACKS}, got {name!r}")


def art_attack(model: nn.Module, x: np.ndarray, y: np.ndarray, eps: float, attack: str = "apgd",
               iterations: int = 50, image_shape: tuple | None = None, num_classes: int = 10,
               batch_size: int = 512, device="cpu") -> dict:
    """Attack ``model`` with one of ART's l-inf attacks and say, per image, whether it survived.

    ``image_shape`` reshapes flat inputs into images (Square perturbs square patches of an image);
    the model must accept that shape. Returns ``correct`` (bool per image), ``accuracy``,
    ``clean_accuracy`` and ``max_perturbation`` (to check that the budget was respected).
    """
    x = x.astype(np.float32)
    if image_shape is not None:
        x = x.reshape(len(x), *image_shape)
    model = model.to(device)
    if attack == "square":
        # ART draws a square's corner with randint(0, size - s), which never reaches the last row
        # and column; one padded row and column (cropped away before the model) restore them.
        size = x.shape[-2:]
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, 1), (0, 1)])
        model = CropTo(model, size)
    clf = art_classifier(model, tuple(x.shape[1:]), num_classes, device)
    with quiet_progress():
        x_adv = _art_attack(attack, clf, eps, iterations, batch_size).generate(x=x, y=y)
    x_adv = x_adv.astype(np.float32)
    if attack == "square":
        x, x_adv = x[..., :size[0], :size[1]], x_adv[..., :size[0], :size[1]]
        clf = art_classifier(model.model, tuple(x.shape[1:]), num_classes, device)
    correct = clf.predict(x_adv, batch_size=batch_size).argmax(1) == y
    return {"correct": correct, "accuracy": float(correct.mean()),
            "max_perturbation": float(np.abs(x_adv - x).max()),
            "clean_accuracy": float((clf.predict(x, batch_size=batch_size).argmax(1) == y).mean())}
