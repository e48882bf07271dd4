"""Coloured shapes on textured backgrounds: a CIFAR-like stand-in whose latent factors are known.

Every image is drawn from independent factors, all returned with it: the shape (the class), the
colour of the shape, its texture, its position and scale, and the background. Because the class
is the shape alone, colour and texture are nuisances a classifier must learn to ignore, and a
chapter can ask which factor a model (or a neuron) really responds to.
"""
from __future__ import annotations

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "plus", "ring", "hbar", "vbar", "cross",
          "half_disc")
COLOURS = {"red": (0.9, 0.15, 0.1), "green": (0.15, 0.75, 0.2), "blue": (0.15, 0.3, 0.9),
           "yellow": (0.95, 0.85, 0.1), "magenta": (0.85, 0.2, 0.8), "cyan": (0.1, 0.8, 0.85)}
TEXTURES = ("plain", "stripes", "dots")


def shape_mask(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mask of a unit-size shape on coordinates (u, v) centred on the shape (v points up)."""
    au, av = np.abs(u), np.abs(v)
    r = np.sqrt(u ** 2 + v ** 2)
    masks = {
        "circle": r <= 1.0,
        "square": np.maximum(au, av) <= 0.8,
        "triangle": (v <= 0.8) & (v >= -0.9 + 2.0 * au),
        "diamond": au + av <= 1.0,
        "plus": ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0)),
        "ring": (r <= 1.0) & (r >= 0.55),
        "hbar": (au <= 1.0) & (av <= 0.35),
        "vbar": (av <= 1.0) & (au <= 0.35),
        "cross": (np.abs(u - v) <= 0.4) & (np.abs(u + v) <= 1.6) | (np.abs(u + v) <= 0.4) & (np.abs(u - v) <= 1.6),
        "half_disc": (r <= 1.0) & (v >= 0.0),
    }
    return masks[name]


def _texture(name: str, yy: np.ndarray, xx: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Brightness multiplier of a texture on pixel grids, one phase per image."""
    if name == "plain":
        return np.ones(np.broadcast_shapes(yy.shape, phase.shape))
    if name == "stripes":
        return 0.55 + 0.45 * (np.sin((xx + yy) * 1.4 + phase) > 0)
    return 0.55 + 0.45 * ((np.sin(xx * 1.6 + phase) * np.sin(yy * 1.6 + phase)) > 0)


def make_shapes(n: int, size: int = 32, seed: int = 0, background_noise: float = 0.08,
                shapes=SHAPES) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``n`` images (n, 3, size, size) in [0, 1], labels (the shape index) and the factors."""
    rng = np.random.default_rng(seed)
    colour_values = np.array(list(COLOURS.values()))
    f = {"shape": rng.integers(0, len(shapes), n), "colour": rng.integers(0, len(COLOURS), n),
         "texture": rng.integers(0, len(TEXTURES), n),
         "scale": rng.uniform(0.22, 0.34, n) * size, "cx": rng.uniform(0.35, 0.65, n) * size,
         "cy": rng.uniform(0.35, 0.65, n) * size, "background": rng.uniform(0.15, 0.55, (n, 3))}
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    # Background: a flat random colour, a gentle gradient and pixel noise.
    gradient = (xx / size - 0.5)[None, None] * rng.uniform(-0.3, 0.3, (n, 1, 1, 1))
    images[:] = f["background"][:, :, None, None] + gradient
    images += rng.normal(0, background_noise, images.shape).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    for s, name in enumerate(shapes):
        idx = np.flatnonzero(f["shape"] == s)
        if idx.size == 0:
            continue
        u = (xx[None] - f["cx"][idx, None, None]) / f["scale"][idx, None, None]
        v = (f["cy"][idx, None, None] - yy[None]) / f["scale"][idx, None, None]
        mask = shape_mask(name, u, v)
        shade = np.ones(mask.shape, dtype=np.float32)
        for t, texture in enumerate(TEXTURES):
            sel = f["texture"][idx] == t
            if sel.any():
                shade[sel] = _texture(texture, yy[None], xx[None], phase[idx][sel])
        fg = colour_values[f["colour"][idx]][:, :, None, None] * shade[:, None]
        images[idx] = np.where(mask[:, None], fg, images[idx])
    return np.clip(images, 0, 1), f["shape"].astype(np.int64), f
