"""Image sets for the chapter: digits (smoke) and generated shapes whose classes are compositions
of attributes (full), split into train / probe (builds concepts) / evaluation (measures them)."""
from __future__ import annotations

import numpy as np

from ..data.digits import load_digits_images
from ..data.shapes import COLOURS, SHAPES, TEXTURES, make_shapes

COMPOSITION = {"shape": SHAPES[:4], "colour": list(COLOURS)[:3], "texture": TEXTURES[:2]}


def _three_way(n: int, sizes: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    order = rng.permutation(n)
    a, b = sizes
    return {"train": order[:a], "probe": order[a:a + b], "eval": order[a + b:]}


def digits_sets(seed: int, train: int = 900, probe: int = 450) -> dict:
    """scikit-learn digits as (N, 1, 8, 8) in [0, 1]; the only attribute is the digit."""
    images, y = load_digits_images()
    x = images[:, None]
    idx = _three_way(len(y), (train, probe), np.random.default_rng(seed))
    return {"x": x, "y": y, "attributes": {"digit": y}, "split": idx, "classes": [str(i) for i in range(10)]}


def composition_sets(seed: int, n: int = 6000, train_share: float = 0.6) -> dict:
    """Shapes x colours x textures (4 x 3 x 2 = 24 classes) on noisy backgrounds, 32 x 32."""
    rng_seed = 1000 + seed
    xs, fs = [], {k: [] for k in ("shape", "colour", "texture")}
    total = 0
    while total < n:  # the generator draws from all factors; keep the composition's subset
        x, _, f = make_shapes(4 * n, 32, seed=rng_seed)
        keep = (f["shape"] < 4) & (f["colour"] < 3) & (f["texture"] < 2)
        xs.append(x[keep])
        for k in fs:
            fs[k].append(f[k][keep])
        total += keep.sum()
        rng_seed += 1
    x = np.concatenate(xs)[:n]
    attrs = {k: np.concatenate(v)[:n].astype(np.int64) for k, v in fs.items()}
    y = attrs["shape"] * 6 + attrs["colour"] * 2 + attrs["texture"]
    attrs = {"class": y, **attrs}
    probe = (n - int(train_share * n)) // 2
    idx = _three_way(n, (int(train_share * n), probe), np.random.default_rng(seed))
    classes = [f"{s}/{c}/{t}" for s in COMPOSITION["shape"] for c in COMPOSITION["colour"]
               for t in COMPOSITION["texture"]]
    return {"x": x, "y": y, "attributes": attrs, "split": idx, "classes": classes}
