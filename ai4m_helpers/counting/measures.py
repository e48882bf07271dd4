"""What the chapter measures: counting errors, a classical counter that shares nothing with the
learned models, and the count fidelity, faithfulness and diversity of synthetic images."""
from __future__ import annotations

import numpy as np

from ..data.counting import VOCAB
from ..data.shapes import COLOURS

COLOUR_VALUES = np.array(list(COLOURS.values()))
COLOUR_RADIUS = 0.3     # RGB distance to the named colour below which a pixel is the object's
MIN_AREA = 2            # components smaller than this many pixels are noise


def mae(predicted, truth) -> float:
    return float(np.mean(np.abs(np.asarray(predicted) - np.asarray(truth))))


def rmse(predicted, truth) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(truth)) ** 2)))


def colour_mask(image: np.ndarray, colour: int, radius: float = COLOUR_RADIUS) -> np.ndarray:
    """Pixels of (3, H, W) ``image`` within ``radius`` of the named colour ``colour``; every
    other named colour must be farther (so red never counts as magenta)."""
    pixels = image.transpose(1, 2, 0)[..., None, :]
    dist = np.sqrt(((pixels - COLOUR_VALUES) ** 2).sum(-1))          # (H, W, colours)
    return (dist[..., colour] < radius) & (dist.argmin(-1) == colour)


def classical_count(images: np.ndarray, colours: np.ndarray, min_area: int = MIN_AREA) -> np.ndarray:
    """Connected components (8-connected) of the caption colour's mask, small ones dropped: a
    counter with no learned part, to cross-check the learned one on generated scenes."""
    from scipy import ndimage

    counts = []
    for image, colour in zip(images, colours):
        labels, n = ndimage.label(colour_mask(image, int(colour)), structure=np.ones((3, 3)))
        areas = np.bincount(labels.ravel())[1:]
        counts.append(int((areas >= min_area).sum()))
    return np.array(counts)


def attribute_accuracy(predicted: dict, intended: dict) -> dict[str, float]:
    """Share of images whose predicted attribute equals the one their caption asked for."""
    return {k: float(np.mean(predicted[k] == intended[k])) for k in VOCAB}


def feature_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine distance between paired rows (a synthetic image and its source)."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1 - (a * b).sum(1)
