"""SemAug's augmentation: ControlNet fine-tuning on density maps, caption swapping, and the
synthetic sets of every arm.

Arms (each yields synthetic images whose label is the *source* image's density map):
- ``density``: the source's caption and density map (SemAug without swapping);
- ``swap``: as ``density``, but with probability ``p`` the caption is replaced by another training
  caption whose similarity to it exceeds ``threshold`` (SemAug);
- ``swap_any``: the same swap with no threshold (the paper's implausible pairs);
- ``no_density``: the caption-only UNet from the source image noised to ``t0`` (DA-Fusion's
  real-guidance baseline, the paper's comparison without density control).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from ..data.counting import Scenes
from . import generator as gen

GENERATION_ARMS = ("density", "swap", "swap_any", "no_density")


def swap_candidates(similarities: np.ndarray, threshold: float | None) -> list[np.ndarray]:
    """For each caption, the other captions it may be swapped with: similarity above
    ``threshold`` (any other caption when ``threshold`` is None). The caption itself is never a
    candidate (the official code means to drop it but keeps it by mistake)."""
    n = len(similarities)
    out = []
    for i in range(n):
        ok = np.ones(n, bool) if threshold is None else similarities[i] > threshold
        ok[i] = False
        out.append(np.flatnonzero(ok))
    return out


def swap_captions(own: np.ndarray, candidates: list[np.ndarray], probability: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Caption index per synthetic image: its own, or with ``probability`` a random candidate of
    it (its own when it has none)."""
    out = own.copy()
    for j, c in enumerate(own):
        if candidates[c].size and rng.random() < probability:
            out[j] = rng.choice(candidates[c])
    return out


def train_controlnet(base, scenes: Scenes, text: torch.Tensor, *, steps: int, batch: int,
                     lr: float, seed: int, device="cpu"):
    """A ControlNet copied from the frozen base and trained on (image, caption, density) with the
    diffusion loss; returns it and its loss curve."""
    torch.manual_seed(seed)
    controlnet = gen.make_controlnet(base).to(device).train()
    scheduler = gen.noise_scheduler()
    images = torch.from_numpy(scenes.images).to(device)
    control = gen.control_image(torch.from_numpy(scenes.density).to(device))
    g = torch.Generator(device=device).manual_seed(seed)

    def loss(step):
        idx = torch.randint(0, len(images), (batch,), generator=g, device=device)
        return gen.diffusion_loss(base, scheduler, images[idx], text[idx], controlnet,
                                  control[idx], generator=g)

    losses = gen.train_model(list(controlnet.parameters()), loss, steps, lr)
    return controlnet.eval().requires_grad_(False), losses


@dataclasses.dataclass
class SyntheticSet:
    """Synthetic images of one arm: ``source[j]`` is the real image whose density (and boxes)
    label image j; ``caption[j]`` indexes the caption it was generated from, ``own[j]`` its
    source's caption."""

    arm: str
    images: np.ndarray
    source: np.ndarray
    caption: np.ndarray
    own: np.ndarray
    seconds: float


def generate(arm: str, base, controlnet, scenes: Scenes, caption_ids: np.ndarray,
             embeddings: torch.Tensor, candidates: dict, *, sources: np.ndarray, per_image: int,
             swap_probability: float, steps: int, guidance: float, t0: float, seed: int,
             device="cpu") -> SyntheticSet:
    """``per_image`` synthetic images of each source image for one arm, timed."""
    rng = np.random.default_rng(seed)
    source = np.repeat(sources, per_image)
    own = caption_ids[source]
    chosen = own
    if arm in ("swap", "swap_any"):
        chosen = swap_captions(own, candidates[arm], swap_probability, rng)
    g = torch.Generator(device=device).manual_seed(seed)
    text = embeddings[torch.from_numpy(chosen).to(device)]
    start = time.perf_counter()
    if arm == "no_density":
        init = torch.from_numpy(scenes.images[source]).to(device)
        images = gen.sample(base, text, steps=steps, guidance=guidance, init=init, t0=t0,
                            generator=g)
    else:
        control = gen.control_image(torch.from_numpy(scenes.density[source]).to(device))
        images = gen.sample(base, text, controlnet=controlnet, control=control, steps=steps,
                            guidance=guidance, generator=g)
    seconds = time.perf_counter() - start
    return SyntheticSet(arm, images.cpu().numpy(), source, chosen, own, seconds)
