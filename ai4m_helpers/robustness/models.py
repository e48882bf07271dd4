"""Small classifiers for the chapter: an over-parameterised MLP and a compact conv net.

Both cast their input to float32 first: some ART attacks feed float64 arrays under numpy 2.
Neither uses batch norm, so a stack of them can be trained as one vmapped ensemble.
"""
from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Flatten -> [Linear -> ReLU] x depth -> Linear."""

    def __init__(self, in_features: int = 64, width: int = 1024, depth: int = 2, num_classes: int = 10):
        super().__init__()
        layers, size = [], in_features
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        layers.append(nn.Linear(size, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float().flatten(1))


class ConvNet(nn.Module):
    """Three conv blocks (GroupNorm, ReLU, stride-2 downsampling) and a linear head, for 32x32 input."""

    def __init__(self, in_channels: int = 3, width: int = 32, num_classes: int = 10):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, stride=2, padding=1), nn.ReLU())

        self.features = nn.Sequential(block(in_channels, width), block(width, 2 * width),
                                      block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.float()))
