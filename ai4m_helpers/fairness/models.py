"""The audited detector: a small CNN (1 = fake), its verdicts, its ART wrapper, and a label-only
"service"."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..art_tools import art_classifier


class DetectorCNN(nn.Module):
    def __init__(self, size: int = 32, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(2 * width * 16, 2))

    def forward(self, x):
        return self.net(x.float())  # float32 even when ART hands over float64 arrays


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, device="cpu", batch: int = 1024) -> np.ndarray:
    xt = torch.tensor(x, device=device)
    return torch.cat([model(xt[i:i + batch]).argmax(1) for i in range(0, len(xt), batch)]).cpu().numpy()


def white_box(model: nn.Module, size: int, device="cpu", optimizer=None):
    """ART's PyTorchClassifier: gradients available (the auditor has the model; an optimizer to
    train it through ART)."""
    return art_classifier(model, (3, size, size), 2, device, optimizer)


class LabelOnlyService:
    """What a newsroom's API returns: a label per image, nothing else; counts the queries."""

    def __init__(self, model: nn.Module, device="cpu"):
        self.model, self.device, self.queries = model, device, 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.queries += len(x)
        labels = predict(self.model, x.astype(np.float32), self.device)
        return np.eye(2, dtype=np.float32)[labels]  # one-hot labels, as ART's BlackBoxClassifier expects

    def art(self, size: int):
        from art.estimators.classification import BlackBoxClassifier

        return BlackBoxClassifier(self, (3, size, size), 2, clip_values=(0.0, 1.0))
