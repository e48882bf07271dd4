"""Training the concept model: a classifier on the chapter's labels, and its accuracy."""
from __future__ import annotations

import torch
from torch import nn


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
