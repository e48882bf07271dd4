"""Local training and evaluation, as each client runs them."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def local_train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, batch: int,
                seed: int, momentum: float = 0.0, device="cpu") -> float:
    """``epochs`` passes of SGD over the client's clips in a seeded order (FedAvg's ClientUpdate;
    the momentum buffer starts afresh every round); returns the mean training loss of the last
    pass."""
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    loss_fn = nn.CrossEntropyLoss()
    total = 0.0
    for _ in range(epochs):
        order = torch.randperm(len(yt), generator=gen).to(device)
        total, seen = 0.0, 0
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total, seen = total + loss.item() * len(idx), seen + len(idx)
        total /= max(seen, 1)
    model.cpu()
    return float(total)


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) of ``model`` on clips ``x`` with labels ``y``."""
    model.eval()
    logits = model(torch.as_tensor(x))
    yt = torch.as_tensor(y)
    loss = nn.functional.cross_entropy(logits, yt).item()
    return float(loss), float((logits.argmax(1) == yt).float().mean())
