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


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float = 3e-3,
                     batch_size: int = 128, seed: int = 0) -> list[float]:
    """Adam on random mini-batches; returns the loss every 50 steps."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(y), (min(batch_size, len(y)),), generator=gen, device=x.device)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0:
            losses.append(float(loss.detach()))
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
