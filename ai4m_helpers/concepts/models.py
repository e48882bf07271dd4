"""Small CNNs whose last conv stage is global-average-pooled: the activations the method splits."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ConceptCNN(nn.Module):
    """Conv blocks -> GAP -> a small MLP head. ``channels`` is the width of the analysed stage;
    keeping it narrow against the number of classes forces superposition."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, channels: int = 32,
                 downsample: int = 0, hidden: int = 64):
        super().__init__()
        layers, cin = [], in_channels
        for _ in range(downsample):  # stride-2 blocks for larger images
            layers += [nn.Conv2d(cin, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            cin = width
        layers += [nn.Conv2d(cin, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                   nn.Conv2d(width, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(),
                                  nn.Linear(hidden, num_classes))

    @property
    def analysed_layer(self) -> nn.Module:
        return self.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x.float())))


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
