"""Chapter 5's model: a small MLP over the statistics of log-mel frames, and the flat-vector
view of its weights that encryption and clipping work on."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class SoundNet(nn.Module):
    """Statistics pooling (each mel band's mean and standard deviation over time) and an MLP of
    two hidden layers. ``width`` sets the size: 64 gives about 9.8 k parameters."""

    def __init__(self, bands: int = 40, classes: int = 4, width: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.LayerNorm(2 * bands),   # per clip: needs no statistics pooled across clients
            nn.Linear(2 * bands, width), nn.ReLU(),
            nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([x.mean(-1), x.std(-1)], dim=1))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """The model's state as NumPy arrays, in ``state_dict`` order (what Flower's records hold)."""
    return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]


def set_weights(model: nn.Module, weights: list[np.ndarray]) -> nn.Module:
    keys = list(model.state_dict())
    if len(keys) != len(weights):
        raise ValueError(f"expected {len(keys)} arrays, got {len(weights)}")
    model.load_state_dict({k: torch.as_tensor(np.asarray(w)) for k, w in zip(keys, weights)})
    return model


def flatten(weights: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in weights])


def unflatten(vector: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    """Cut a flat vector back into arrays shaped (and typed) like ``like``."""
    out, start = [], 0
    for w in like:
        out.append(np.asarray(vector[start:start + w.size], dtype=w.dtype).reshape(w.shape))
        start += w.size
    if start != len(vector):
        raise ValueError(f"vector has {len(vector)} values, the arrays {start}")
    return out
