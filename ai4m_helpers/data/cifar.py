"""CIFAR-10 in its published "python version" layout, for readers who have downloaded it.

Nothing here downloads: pass the folder ``cifar-10-batches-py`` that the official archive unpacks to.
Each batch file is a pickle holding ``b"data"`` (N x 3072 uint8, channel-major rows of 32x32) and
``b"labels"``.
"""
from __future__ import annotations

import pathlib
import pickle

import numpy as np

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _read_batch(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: expected rows of 3072 bytes, got shape {data.shape}")
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(root: str | pathlib.Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 (N, 3, 32, 32) in [0, 1] and labels (N,) from ``root``."""
    root = pathlib.Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    files = {"train": TRAIN_FILES, "test": TEST_FILES}[split]
    missing = [f for f in files if not (root / f).exists()]
    if missing:
        raise FileNotFoundError(f"{root} lacks {missing}: unpack the official cifar-10-python archive there")
    parts = [_read_batch(root / f) for f in files]
    x = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    y = np.concatenate([p[1] for p in parts])
    return x, y
