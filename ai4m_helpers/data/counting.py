"""Counting scenes: many objects of one category on a textured background, with point annotations,
FSC-147-style density maps, three exemplar boxes and a caption.

A scene's *category* is a shape, drawn in one colour and one size class; its background is one
of four textures in a muted tint. Every factor is returned with the image. The count is drawn
uniformly in a range, independently of every other factor except the size class (large objects
do not fit 40 times into 32 x 32 pixels, as in real photographs). Scene ``i`` of a set is a
function of ``(seed, i)`` alone, so any subset can be rebuilt anywhere.

Density maps follow FSC-147: one Gaussian per annotated point whose width adapts to the distance
to the nearest neighbours (sigma = beta times the mean distance to the k nearest points; beta = 0.3,
k = 3, as in geometry-adaptive kernels), each kernel normalised on the pixel grid so that a map
sums to its count exactly.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from .shapes import COLOURS, shape_mask

NOUNS = {"circle": "discs", "square": "squares", "triangle": "triangles", "diamond": "diamonds",
         "plus": "plus signs", "ring": "rings", "hbar": "horizontal bars",
         "vbar": "vertical bars", "cross": "crosses", "half_disc": "half discs"}
BACKGROUNDS = {"plain": "plain", "stripes": "striped", "dots": "dotted", "checks": "checked"}
SIZES = {"small": (1.4, 1.8), "large": (2.3, 2.9)}   # object radius in pixels (32 x 32 scenes)
MAX_COUNT = {"small": 40, "large": 24}
KERNEL_BETA, KERNEL_NEIGHBOURS, KERNEL_SIGMA = 0.3, 3, (0.6, 4.0)


@dataclasses.dataclass
class Scenes:
    """A set of counting scenes; every array has one row per scene."""

    images: np.ndarray        # (n, 3, H, W) float32 in [0, 1]
    density: np.ndarray       # (n, H, W) float32; sums to the count
    masks: np.ndarray         # (n, H, W) bool: object pixels
    boxes: np.ndarray         # (n, 3, 4) float32 exemplar boxes (x0, y0, x1, y1), pixels
    points: list              # n arrays (k, 2) of object centres (y, x)
    factors: dict             # shape, colour, size, background: (n,) int, indices in VOCAB
    captions: list

    @property
    def counts(self) -> np.ndarray:
        return np.array([len(p) for p in self.points])

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx) -> "Scenes":
        idx = np.asarray(idx)
        return Scenes(self.images[idx], self.density[idx], self.masks[idx], self.boxes[idx],
                      [self.points[i] for i in idx], {k: v[idx] for k, v in self.factors.items()},
                      [self.captions[i] for i in idx])


VOCAB = {"shape": tuple(NOUNS), "colour": tuple(COLOURS), "size": tuple(SIZES),
         "background": tuple(BACKGROUNDS)}


def caption(shape: str, colour: str, size: str, background: str) -> str:
    """The template caption of a category on a background."""
    return f"{size} {colour} {NOUNS[shape]} on a {BACKGROUNDS[background]} background"


def all_captions(shapes=tuple(NOUNS)) -> list[str]:
    """Every caption the generator can write for these shapes."""
    return [caption(*c) for c in itertools.product(shapes, COLOURS, SIZES, BACKGROUNDS)]


def adaptive_sigmas(points: np.ndarray, beta: float = KERNEL_BETA, k: int = KERNEL_NEIGHBOURS,
                    bounds=KERNEL_SIGMA, lone: float = 2.0) -> np.ndarray:
    """Kernel width per point: beta x mean distance to its k nearest neighbours, clipped to
    ``bounds``; a point alone in its image gets ``lone``."""
    if len(points) < 2:
        return np.full(len(points), lone)
    d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    near = np.sort(d, axis=1)[:, :min(k, len(points) - 1)]
    return np.clip(beta * near.mean(1), *bounds)


def density_map(points: np.ndarray, size: int, sigmas: np.ndarray | None = None) -> np.ndarray:
    """Sum of one Gaussian per point (y, x), each normalised on the grid: the map sums to len(points)."""
    sigmas = adaptive_sigmas(points) if sigmas is None else sigmas
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    out = np.zeros((size, size))
    for (y, x), s in zip(points, sigmas):
        g = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s * s))
        out += g / g.sum()
    return out.astype(np.float32)


def _place(rng, k: int, radius: float, size: int, tries: int = 60) -> np.ndarray:
    """Up to k centres at least 2.5 radii apart (objects do not touch), inside the frame."""
    placed: list[tuple[float, float]] = []
    for _ in range(k):
        for _ in range(tries):
            c = rng.uniform(radius, size - radius, 2)
            if all((c[0] - p[0]) ** 2 + (c[1] - p[1]) ** 2 >= (2.5 * radius) ** 2 for p in placed):
                placed.append((float(c[0]), float(c[1])))
                break
    return np.array(placed).reshape(-1, 2)


def _background(rng, texture: str, size: int) -> np.ndarray:
    tint = 0.25 + 0.35 * rng.random() + 0.12 * rng.uniform(-1, 1, 3)  # muted, never saturated
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    period, phase = rng.uniform(4.0, 7.0), rng.uniform(0, 2 * np.pi)
    w = 2 * np.pi / period
    pattern = {"plain": np.zeros_like(xx),
               "stripes": np.sin(w * (xx + yy) + phase) > 0,
               "dots": (np.sin(w * xx + phase) * np.sin(w * yy + phase)) > 0.5,
               "checks": (np.sin(w * xx + phase) * np.sin(w * yy + phase)) > 0}[texture]
    shade = 1.0 - rng.uniform(0.25, 0.45) * pattern
    img = tint[:, None, None] * shade[None] + rng.normal(0, 0.02, (3, size, size))
    return img


def _draw(img, mask, shape: str, colour, centre, radius: float, supersample: int = 4) -> None:
    """Blend one anti-aliased object into ``img`` (3, H, W) and mark its pixels in ``mask``."""
    size = img.shape[-1]
    y0, x0 = (max(0, int(np.floor(c - radius - 1))) for c in centre)
    y1, x1 = (min(size, int(np.ceil(c + radius + 1))) for c in centre)
    s = supersample
    yy, xx = np.mgrid[y0:y1:1 / s, x0:x1:1 / s] + 0.5 / s
    inside = shape_mask(shape, (xx - centre[1]) / radius, (centre[0] - yy) / radius)
    cover = inside.reshape(y1 - y0, s, x1 - x0, s).mean((1, 3))
    patch = img[:, y0:y1, x0:x1]
    img[:, y0:y1, x0:x1] = patch * (1 - cover) + np.asarray(colour)[:, None, None] * cover
    mask[y0:y1, x0:x1] |= cover >= 0.5


def make_scene(seed: int, index: int, shapes=tuple(NOUNS), size: int = 32,
               count_range: tuple[int, int] = (3, 40)) -> dict:
    """Scene ``index`` of the set seeded with ``seed`` (a dict of arrays and factors)."""
    rng = np.random.default_rng([seed, index])
    f = {"shape": VOCAB["shape"].index(shapes[rng.integers(len(shapes))]),
         "colour": int(rng.integers(len(COLOURS))), "size": int(rng.integers(len(SIZES))),
         "background": int(rng.integers(len(BACKGROUNDS)))}
    names = {key: VOCAB[key][value] for key, value in f.items()}
    lo, hi = count_range
    k = int(rng.integers(lo, min(hi, MAX_COUNT[names["size"]]) + 1))
    radius = rng.uniform(*SIZES[names["size"]]) * size / 32
    points = _place(rng, k, radius, size)
    img = _background(rng, names["background"], size)
    mask = np.zeros((size, size), dtype=bool)
    colour = np.array(COLOURS[names["colour"]]) + rng.uniform(-0.05, 0.05, 3)
    for centre in points:
        _draw(img, mask, names["shape"], colour, centre, radius * rng.uniform(0.92, 1.08))
    chosen = rng.choice(len(points), 3, replace=len(points) < 3)
    boxes = np.array([[x - radius, y - radius, x + radius, y + radius]
                      for y, x in points[chosen]], dtype=np.float32)
    return {"image": np.clip(img, 0, 1).astype(np.float32), "density": density_map(points, size),
            "mask": mask, "boxes": boxes, "points": points, "factors": f,
            "caption": caption(**names)}


def make_scenes(n: int, seed: int = 0, shapes=tuple(NOUNS), size: int = 32,
                count_range: tuple[int, int] = (3, 40), start: int = 0) -> Scenes:
    """Scenes ``start .. start + n - 1`` of the set seeded with ``seed``, of these shapes."""
    unknown = sorted(set(shapes) - set(NOUNS))
    if unknown:
        raise ValueError(f"unknown shape(s) {unknown}; choose from {', '.join(NOUNS)}")
    scenes = [make_scene(seed, start + i, tuple(shapes), size, count_range) for i in range(n)]
    stack = lambda key: np.stack([s[key] for s in scenes])  # noqa: E731
    factors = {key: np.array([s["factors"][key] for s in scenes], dtype=np.int64) for key in VOCAB}
    return Scenes(stack("image"), stack("density"), stack("mask"), stack("boxes"),
                  [s["points"] for s in scenes], factors, [s["caption"] for s in scenes])
