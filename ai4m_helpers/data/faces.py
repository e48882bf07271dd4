"""Procedural "faces" with a protected attribute, genuine or manipulated.

Each image is a background, an elliptical face whose skin tone is the protected attribute
(group 0: light, group 1: dark), eyes and a mouth, and a second attribute, the face shape (round or
long). A manipulated ("fake") image carries a blending seam: a checkerboard ring along the face
boundary whose contrast is ``artefact_strength[group]`` times the skin's luminance, so that the
same manipulation is fainter on darker skin, as blending artefacts are on real footage.

Nothing here is a real face; it is a controlled stand-in for FaceForensics++ / DFDC, whose images
and demographic annotations cannot be loaded offline. For real data, see :func:`load_image_folder`.
"""
from __future__ import annotations

import csv
import pathlib

import numpy as np

SKIN = {0: (0.88, 0.72, 0.62), 1: (0.42, 0.28, 0.2)}   # group 0 light, group 1 dark


def make_faces(n: int, size: int = 32, group_share: float = 0.5, fake_share: float = 0.5,
               artefact_strength=(0.5, 0.5), seed: int = 0):
    """Images (n, 3, size, size) in [0, 1], labels (1 = fake), groups (1 = dark skin), factors."""
    if not 0 < group_share < 1 or not 0 < fake_share < 1:
        raise ValueError("group_share and fake_share must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    group = (rng.random(n) < group_share).astype(np.int64)
    fake = (rng.random(n) < fake_share).astype(np.int64)
    shape = rng.integers(0, 2, n)                       # 0 round, 1 long
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    cx = 0.5 + rng.uniform(-0.06, 0.06, n)
    cy = 0.52 + rng.uniform(-0.06, 0.06, n)
    rx = np.where(shape == 0, 0.30, 0.24) * rng.uniform(0.9, 1.1, n)
    ry = np.where(shape == 0, 0.32, 0.40) * rng.uniform(0.9, 1.1, n)
    r = np.sqrt(((xx[None] - cx[:, None, None]) / rx[:, None, None]) ** 2 +
                ((yy[None] - cy[:, None, None]) / ry[:, None, None]) ** 2)
    face = r <= 1.0
    skin = np.array([SKIN[g] for g in group]) * rng.uniform(0.92, 1.08, (n, 1))
    background = rng.uniform(0.1, 0.9, (n, 3))
    img = np.where(face[:, None], skin[:, :, None, None], background[:, :, None, None])
    # eyes and mouth, darker than the skin
    for dx in (-0.4, 0.4):
        eye = ((xx[None] - (cx + dx * rx)[:, None, None]) ** 2 +
               (yy[None] - (cy - 0.25 * ry)[:, None, None]) ** 2) <= (0.12 * rx[:, None, None]) ** 2
        img = np.where(eye[:, None], 0.3 * img, img)
    mouth = (np.abs(yy[None] - (cy + 0.45 * ry)[:, None, None]) <= 0.03) & \
        (np.abs(xx[None] - cx[:, None, None]) <= (0.35 * rx)[:, None, None])
    img = np.where(mouth[:, None], 0.5 * img, img)
    # the manipulation: a checkerboard seam on the face boundary, scaled by skin luminance
    seam = (r > 0.82) & (r <= 1.02)
    checker = np.where(((np.floor(xx * size) + np.floor(yy * size)) % 2) == 0, 1.0, -1.0)
    luminance = skin @ np.array([0.299, 0.587, 0.114])
    strength = np.asarray(artefact_strength, dtype=np.float64)[group] * luminance
    amplitude = (fake * strength)[:, None, None] * seam * checker[None]
    img = img + amplitude[:, None]
    img = img + rng.normal(0, 0.03, img.shape)
    factors = {"shape": shape, "luminance": luminance, "artefact_amplitude": fake * strength}
    return np.clip(img, 0, 1).astype(np.float32), fake, group, factors


def load_image_folder(root: str | pathlib.Path, labels_csv: str = "labels.csv",
                      label_column: str = "fake", group_column: str = "group"):
    """Real data in the usual layout: image files in ``root`` and a CSV with one row per image
    (``filename``, the label, the protected attribute, any other columns).

    Returns images (N, 3, H, W) in [0, 1] (all images must share one size), labels, groups and the
    CSV's other columns as a dict of arrays.
    """
    from PIL import Image

    root = pathlib.Path(root)
    with open(root / labels_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{root / labels_csv} has no rows")
    missing = {"filename", label_column, group_column} - set(rows[0])
    if missing:
        raise ValueError(f"{labels_csv} lacks the column(s) {sorted(missing)}")
    images = [np.asarray(Image.open(root / r["filename"]).convert("RGB"), dtype=np.float32) / 255.0
              for r in rows]
    if len({im.shape for im in images}) != 1:
        raise ValueError("images differ in size; resize them first")
    x = np.stack(images).transpose(0, 3, 1, 2)
    y = np.array([int(r[label_column]) for r in rows])
    g = np.array([int(r[group_column]) for r in rows])
    extra = {k: np.array([r[k] for r in rows]) for k in rows[0] if k not in ("filename", label_column, group_column)}
    return x, y, g, extra
