"""Image sets for the chapter: scikit-learn's digits, and generated shapes labelled by shape whose
colour and texture vary freely; each split into train / probe (builds concepts) / evaluation
(measures them)."""
from __future__ import annotations

import numpy as np

from ..data.digits import load_digits_images
from ..data.shapes import COLOURS, SHAPES, TEXTURES, make_shapes


def _three_way(n: int, sizes: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    order = rng.permutation(n)
    a, b = sizes
    return {"train": order[:a], "probe": order[a:a + b], "eval": order[a + b:]}


def digits_sets(seed: int, train: int = 900, probe: int = 450) -> dict:
    """scikit-learn digits as (N, 1, 8, 8) in [0, 1]; the only attribute is the digit."""
    images, y = load_digits_images()
    x = images[:, None]
    idx = _three_way(len(y), (train, probe), np.random.default_rng(seed))
    classes = [str(i) for i in range(10)]
    return {"x": x, "y": y, "attributes": {"digit": y}, "names": {"digit": classes}, "split": idx,
            "classes": classes}


def shape_sets(seed: int, n: int = 6000, train_share: float = 0.6) -> dict:
    """Generated 32 x 32 images (see ``data.shapes``) labelled by their shape alone.

    The model learns to name the shape; the colour and texture of each shape vary independently
    of it, so they are factors the model was *not* trained to separate, and concepts can be judged
    on them too. The generator has no knob that ties a factor to a neuron: nothing is planted.
    """
    x, y, factors = make_shapes(n, 32, seed=1000 + seed)
    attrs = {"shape": y.astype(np.int64), "colour": factors["colour"].astype(np.int64),
             "texture": factors["texture"].astype(np.int64)}
    probe = (n - int(train_share * n)) // 2
    idx = _three_way(n, (int(train_share * n), probe), np.random.default_rng(seed))
    names = {"shape": list(SHAPES), "colour": list(COLOURS), "texture": list(TEXTURES)}
    return {"x": x, "y": y, "attributes": attrs, "names": names, "split": idx, "classes": list(SHAPES)}


DATASETS = {"digits": ("digit",), "shapes": ("shape", "colour", "texture")}   # attributes judged
