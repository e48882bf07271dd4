"""CA-SUM's unsupervised training, as its official solver does it: the length regulariser
|mean(scores) − σ| alone, Adam (lr 5e-4, weight decay 1e-5), gradients accumulated over a batch
of videos and clipped to norm 5, and the weights of the epoch with the lowest training loss."""
from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch


def length_loss(scores: torch.Tensor, sigma: float) -> torch.Tensor:
    return (scores.mean() - sigma).abs()


def train_casum(model, videos: Sequence[np.ndarray], epochs: int, sigma: float = 0.5, lr: float = 5e-4,
                weight_decay: float = 1e-5, batch_videos: int = 20, clip: float = 5.0, seed: int = 0,
                device="cpu") -> tuple[torch.nn.Module, list[float]]:
    """Train on the videos' features (each (T, d)); returns the model at its lowest-loss epoch
    after the first fifth of training (at most 20 epochs skipped, as the official model choice
    skips the first 20: an untrained model already scores near σ) and the loss of every epoch."""
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    feats = [torch.as_tensor(v, dtype=torch.float32, device=device)[None] for v in videos]
    losses, best, best_state = [], float("inf"), None
    skip = min(20, epochs // 5)
    for epoch in range(epochs):
        total = 0.0
        opt.zero_grad()
        for k, idx in enumerate(rng.permutation(len(feats)), start=1):
            scores, _ = model(feats[idx])
            loss = length_loss(scores, sigma)
            loss.backward()
            total += float(loss.detach())
            if k % batch_videos == 0 or k == len(feats):
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
                opt.zero_grad()
        losses.append(total / len(feats))
        if epoch >= skip and losses[-1] < best:
            best, best_state = losses[-1], copy.deepcopy(model.state_dict())
            model.selected_epoch = epoch + 1
    model.load_state_dict(best_state)
    return model.eval(), losses


@torch.no_grad()
def score(model, features, batch: int = 256) -> np.ndarray:
    """Frame scores of one video (T, d) -> (T,), or of a stack of equal-length copies (N, T, d) ->
    (N, T), in eval mode, ``batch`` copies per forward pass."""
    model.eval()
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    single = x.dim() == 2
    x = x[None] if single else x
    device = next(model.parameters()).device
    out = torch.cat([model(x[i:i + batch].to(device))[0].cpu() for i in range(0, len(x), batch)])
    return out[0].numpy() if single else out.numpy()


@torch.no_grad()
def score_masked(model, features: np.ndarray, bounds: np.ndarray, patterns: np.ndarray, black: np.ndarray,
                 batch: int = 256) -> np.ndarray:
    """Frame scores (N, T) of the copies of one video that ``patterns`` (N, fragments) describe,
    each fragment marked 0 replaced by black frames, built ``batch`` copies at a time (the full
    profile's 20,000 copies would not fit in memory at once)."""
    from .explain import mask_fragments

    return np.concatenate([score(model, mask_fragments(features, bounds, patterns[i:i + batch], black), batch)
                           for i in range(0, len(patterns), batch)])


@torch.no_grad()
def attention(model, features) -> np.ndarray:
    """The concentrated attention matrix (T, T) of one video."""
    model.eval()
    device = next(model.parameters()).device
    return model(torch.as_tensor(features, dtype=torch.float32, device=device)[None])[1][0].cpu().numpy()
