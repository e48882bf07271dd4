"""The chapter's data: generated counting scenes split by shape (``data.counting``), and a loader
for FSC-147's published layout for readers who have the dataset.

FSC-147 (Ranjan et al., CVPR 2021) cannot be downloaded here. Its layout, as released:

    annotation_FSC147_384.json        {image: {"points": [[x, y], ...],
                                                 "box_examples_coordinates": [[[x, y] * 4] * 3], ...}}
    Train_Test_Val_FSC_147.json       {"train": [image, ...], "val": [...], "test": [...]}
    ImageClasses_FSC147.txt           "image<TAB>class" per line
    images_384_VarV2/<image>          images resized to a height of 384
    gt_density_map_adaptive_384_VarV2/<stem>.npy   (not needed: maps are rebuilt from the points)

:func:`load_fsc147` reads it into the same :class:`Scenes` the generator returns (square images
of ``size`` pixels, points and boxes rescaled, density maps rebuilt with the adaptive kernel), so
every function of the chapter runs on it unchanged.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np

from ..data.counting import Scenes, density_map, make_scenes
from .splits import TEST_SHAPES, TRAIN_SHAPES

FSC_ANNOTATIONS = "annotation_FSC147_384.json"
FSC_SPLITS = "Train_Test_Val_FSC_147.json"
FSC_CLASSES = "ImageClasses_FSC147.txt"
FSC_IMAGES = "images_384_VarV2"


def chapter_sets(seed: int, n_train: int, n_val: int, n_test: int) -> dict[str, Scenes]:
    """Annotated training scenes and held-out validation scenes of the training shapes, and test
    scenes of the unseen shapes; one seed draws all three, without overlap."""
    return {"train": make_scenes(n_train, seed, TRAIN_SHAPES),
            "val": make_scenes(n_val, seed, TRAIN_SHAPES, start=n_train),
            "test": make_scenes(n_test, seed, TEST_SHAPES, start=n_train + n_val)}


def _box(corners) -> list[float]:
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return [min(xs), min(ys), max(xs), max(ys)]


def load_fsc147(root, split: str = "train", size: int = 32, limit: int | None = None) -> Scenes:
    """FSC-147's ``split`` as square ``size`` x ``size`` scenes (the first three exemplar boxes).
    Captions are the class names ("sea shells"); factors are empty (FSC-147 has none)."""
    from PIL import Image

    root = pathlib.Path(root)
    for name in (FSC_ANNOTATIONS, FSC_SPLITS, FSC_CLASSES, FSC_IMAGES):
        if not (root / name).exists():
            raise FileNotFoundError(f"{root / name} is missing: not an FSC-147 folder")
    annotations = json.loads((root / FSC_ANNOTATIONS).read_text())
    splits = json.loads((root / FSC_SPLITS).read_text())
    if split not in splits:
        raise ValueError(f"no split {split!r} in {FSC_SPLITS}; it has {sorted(splits)}")
    classes = dict(line.split("\t", 1) for line in
                   (root / FSC_CLASSES).read_text().splitlines() if "\t" in line)
    names = splits[split][:limit]
    images, densities, boxes, points = [], [], [], []
    for name in names:
        with Image.open(root / FSC_IMAGES / name) as im:
            w, h = im.size
            images.append(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR),
                                     dtype=np.float32).transpose(2, 0, 1) / 255)
        sx, sy = size / w, size / h
        ann = annotations[name]
        p = np.array([[y * sy, x * sx] for x, y in ann["points"]], dtype=np.float64).reshape(-1, 2)
        b = np.array([_box(c) for c in ann["box_examples_coordinates"][:3]], dtype=np.float32)
        boxes.append(b * np.array([sx, sy, sx, sy], dtype=np.float32))
        points.append(p)
        densities.append(density_map(p, size))
    masks = np.zeros((len(names), size, size), dtype=bool)   # FSC-147 has no object masks
    return Scenes(np.stack(images), np.stack(densities), masks, np.stack(boxes), points, {},
                  [classes.get(n, "").strip() for n in names])


__all__ = ["chapter_sets", "load_fsc147", "TRAIN_SHAPES", "TEST_SHAPES"]
