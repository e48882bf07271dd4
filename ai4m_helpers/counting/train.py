"""Training the counters (one per arm, stacked and trained as one) and the attribute classifier
that judges whether synthetic images show what their caption asks for."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.counting import VOCAB, Scenes
from ..many_models import ModelStack
from .augment import SyntheticSet
from .models import DENSITY_SCALE, SAFECounter


def version_table(n_real: int, synthetic: dict[str, SyntheticSet | None]) -> np.ndarray:
    """(n_real, per_image) indices into every arm's synthetic set: row i lists the synthetic
    versions of real image i (-1 for a real image no synthetic image was made from). The arms'
    sets are aligned (image j of every arm comes from the same source), so one table serves all."""
    sets = [s for s in synthetic.values() if s is not None]
    if not sets:
        return np.full((n_real, 1), -1)
    source = sets[0].source
    if any(not np.array_equal(s.source, source) for s in sets):
        raise ValueError("the arms' synthetic sets must come from the same sources, in order")
    per_image = max(1, int(np.bincount(source).max()))
    table = np.full((n_real, per_image), -1)
    for j, i in enumerate(source):
        table[i, np.argmax(table[i] < 0)] = j
    return table


def _draw(n_real: int, table: np.ndarray, share: float, size: int, rng: np.random.Generator):
    """One batch's draws, shared by every arm: real indices, and for each the synthetic version
    that replaces it (-1: none). As in DA-Fusion, a real image is replaced, with probability
    ``share``, by one of *its own* synthetic versions, so every arm sees the same layouts and
    labels, and arms differ only in the pixels they see."""
    real = rng.integers(0, n_real, size)
    version = table[real, rng.integers(0, table.shape[1], size)]
    replace = (rng.random(size) < share) & (version >= 0)
    return real, np.where(replace, version, -1)


def _batch(scenes: Scenes, syn: SyntheticSet | None, draws):
    real, version = draws
    images, density, boxes = scenes.images[real], scenes.density[real], scenes.boxes[real]
    swap = version >= 0
    if syn is not None and swap.any():
        images = images.copy()
        images[swap] = syn.images[version[swap]]
    return images, density, boxes


def train_counters(scenes: Scenes, synthetic: dict[str, SyntheticSet | None], *, steps: int,
                   batch: int, lr: float, share: float, seed: int, heldout=None, device="cpu"):
    """One SAFECount-style counter per arm (``synthetic[arm]`` None for real only), all from the
    same initial weights, the same number of steps, the same batch size and the same draws;
    trained as one stack. With ``heldout`` (indices of real images), one more member trains on
    the real images *not* in it, on draws of its own: the counter that judges synthetic images
    made from those held-out sources. Returns the stack (members in the order of ``synthetic``,
    then that judge) and the loss curves (steps, members)."""
    arms = list(synthetic)
    table = version_table(len(scenes), synthetic)
    rest = None if heldout is None else np.setdiff1d(np.arange(len(scenes)), heldout)
    members = len(arms) + (rest is not None)
    stack = ModelStack.from_seeds(SAFECounter, [seed] * members, device=device)
    opt = torch.optim.AdamW(stack.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    rng, judge_rng = np.random.default_rng([seed, 7]), np.random.default_rng([seed, 8])
    curves = np.zeros((steps, members))
    stack.train()
    for step in range(steps):
        draws = _draw(len(scenes), table, share, batch, rng)
        parts = [_batch(scenes, synthetic[a], draws) for a in arms]
        if rest is not None:
            own = rest[judge_rng.integers(0, len(rest), batch)]
            parts.append(_batch(scenes, None, (own, np.full(batch, -1))))
        x, d, b = (torch.from_numpy(np.stack(p)).to(device) for p in zip(*parts))
        pred = stack((x, b))
        per_member = ((pred - d) * DENSITY_SCALE).pow(2).mean((1, 2, 3))
        opt.zero_grad(set_to_none=True)
        per_member.sum().backward()
        opt.step()
        sched.step()
        curves[step] = per_member.detach().cpu().numpy()
    return stack.eval(), curves


@torch.no_grad()
def predict_counts(stack: ModelStack, images: np.ndarray, boxes: np.ndarray, device="cpu",
                   batch: int = 256, member: int | None = None) -> np.ndarray:
    """Counts (members, images): the sum of each member's predicted density; with ``member``,
    that member's alone (1, images), without running the others."""
    one = None if member is None else stack.member_view(member % stack.size)
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch]).to(device)
        b = torch.from_numpy(boxes[i:i + batch]).to(device)
        density = stack.forward_shared((x, b)) if one is None else one((x, b))[None]
        out.append(density.sum((-1, -2)).cpu().numpy())
    return np.concatenate(out, axis=1)


class AttributeNet(nn.Module):
    """A small CNN with one head per caption attribute (shape, colour, size, background);
    ``features`` is the pooled representation that diversity is measured in."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(4, width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.GroupNorm(4, 2 * width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GroupNorm(4, 2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleDict({k: nn.Linear(2 * width, len(v)) for k, v in VOCAB.items()})

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        f = self.body(x)
        return {k: head(f) for k, head in self.heads.items()}


def train_attribute_net(scenes: Scenes, *, steps: int, batch: int, lr: float, seed: int,
                        device="cpu") -> AttributeNet:
    """Fit the attribute classifier on real images (cross-entropy summed over attributes)."""
    torch.manual_seed(seed)
    net = AttributeNet().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    x = torch.from_numpy(scenes.images).to(device)
    y = {k: torch.from_numpy(v).to(device) for k, v in scenes.factors.items()}
    g = torch.Generator(device=device).manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=g, device=device)
        out = net(x[idx])
        loss = sum(F.cross_entropy(out[k], y[k][idx]) for k in out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def attribute_predictions(net: AttributeNet, images: np.ndarray, device="cpu"):
    """Predicted attribute indices and pooled features of images."""
    x = torch.from_numpy(images).to(device)
    out = net(x)
    return ({k: v.argmax(1).cpu().numpy() for k, v in out.items()},
            net.features(x).cpu().numpy())
