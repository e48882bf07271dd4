"""Bridges to IBM's Adversarial Robustness Toolbox (ART), shared by the chapters that use it."""
from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn


@contextlib.contextmanager
def quiet_progress():
    """ART imports tqdm.auto, which warns in a notebook without ipywidgets; we need no bars."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        yield


@contextlib.contextmanager
def numpy_global_seed(seed: int):
    """Seed NumPy's global generator for a block and restore it after: some of ART's attacks and
    trainers draw from it (HopSkipJump's directions, the trainer's batches)."""
    import numpy as np

    state = np.random.get_state()
    np.random.seed(seed % 2 ** 32)
    try:
        yield
    finally:
        np.random.set_state(state)


def art_classifier(model: nn.Module, input_shape: tuple, num_classes: int, device="cpu",
                   optimizer=None):
    """Wrap a torch model as ART's PyTorchClassifier on pixel range [0, 1] (an optimizer to train it)."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=input_shape,
                             nb_classes=num_classes, clip_values=(0.0, 1.0), optimizer=optimizer,
                             device_type="gpu" if torch.device(device).type == "cuda" else "cpu")
