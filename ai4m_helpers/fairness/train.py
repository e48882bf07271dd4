"""Training the detector: Adam on cross-entropy, one seed fixing weights and batch order."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .models import DetectorCNN


def train_detector(x: np.ndarray, y: np.ndarray, epochs: int, seed: int, device="cpu", width: int = 16,
                   batch_size: int = 128, lr: float = 2e-3) -> DetectorCNN:
    torch.manual_seed(seed)
    model = DetectorCNN(x.shape[-1], width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.tensor(x, device=device), torch.tensor(y, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(yt), generator=gen, device=device).split(batch_size):
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()
