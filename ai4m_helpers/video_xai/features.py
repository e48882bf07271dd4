"""A fixed, seeded frame-feature extractor, standing in for GoogLeNet's pool5 features (which
would need downloaded weights): colour histograms on a 4 x 4 grid and a random convolution layer,
pooled per grid cell, projected to ``dim`` dimensions by a fixed random matrix. Nothing is
trained, so the same seed gives the same features everywhere; a black frame's features are
``extractor(zeros)``, as the papers mask a fragment with black frames."""
from __future__ import annotations

import numpy as np
import torch

GRID = 4
BINS = 4
FILTERS = 32


class FrameFeatures:
    def __init__(self, dim: int, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.filters = torch.randn(FILTERS, 3, 5, 5, generator=gen) / 5.0
        self.bias = torch.randn(FILTERS, generator=gen) * 0.1
        raw = GRID * GRID * (3 * BINS + FILTERS)
        self.projection = torch.randn(raw, dim, generator=gen) / raw ** 0.5

    def _histograms(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) -> (N, GRID*GRID*3*BINS): each cell's share of pixels per channel bin."""
        n, h, w, _ = frames.shape
        bins = (frames.clamp(0, 1 - 1e-6) * BINS).long()                          # (N, H, W, 3)
        onehot = torch.nn.functional.one_hot(bins, BINS).float()                  # (N, H, W, 3, BINS)
        cells = onehot.reshape(n, GRID, h // GRID, GRID, w // GRID, 3 * BINS)
        return cells.mean(dim=(2, 4)).reshape(n, -1)

    def _conv(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2)
        y = torch.relu(torch.nn.functional.conv2d(x, self.filters, self.bias, padding=2))
        return torch.nn.functional.adaptive_avg_pool2d(y, GRID).reshape(len(frames), -1)

    @torch.no_grad()
    def __call__(self, frames) -> np.ndarray:
        """Features (N, dim) of frames (N, H, W, 3) in [0, 1] (H and W multiples of 4)."""
        x = torch.as_tensor(np.asarray(frames), dtype=torch.float32)
        raw = torch.cat([self._histograms(x), self._conv(x)], dim=1)
        return (raw @ self.projection).numpy()

    def black(self, size: int) -> np.ndarray:
        """Features (dim,) of a black frame of ``size`` x ``size`` pixels."""
        return self(np.zeros((1, size, size, 3), np.float32))[0]
