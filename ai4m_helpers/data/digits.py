"""scikit-learn's 8x8 digits (shipped with scikit-learn): the one loader every chapter uses, and the
splits for adversarial training."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Split:
    """Images in [0, 1] as float32 arrays (N, ...) and integer labels (N,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits as (N, 8, 8) float32 images in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def add_label_noise(y: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator):
    """Resample a ``rate`` share of labels uniformly over all classes (some keep their label).

    Returns the noisy labels and the mask of labels that actually changed.
    """
    noisy = y.copy()
    chosen = rng.random(len(y)) < rate
    noisy[chosen] = rng.integers(0, num_classes, chosen.sum())
    return noisy, noisy != y


def load_digits_splits(n_train: int = 500, n_val: int = 500, label_noise: float = 0.0,
                       seed: int = 0) -> dict[str, Split]:
    """Stratified train / validation / test splits of the 1,797 digits, pixels scaled to [0, 1].

    Label noise, if any, is put on the training split only; validation (which picks the "best"
    checkpoint) and test stay clean.
    """
    from sklearn.model_selection import train_test_split

    images, y = load_digits_images()
    x = images.reshape(len(y), -1)
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, train_size=n_train, stratify=y, random_state=seed)
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, train_size=n_val, stratify=y_rest, random_state=seed)
    rng = np.random.default_rng(seed)
    y_train_noisy, _ = add_label_noise(y_train, label_noise, 10, rng)
    return {"train": Split(x_train, y_train_noisy), "train_clean_labels": Split(x_train, y_train),
            "val": Split(x_val, y_val), "test": Split(x_test, y_test)}
