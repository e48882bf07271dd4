"""Procedural "faces" with five attributes, genuine or manipulated by one of two generator families.

Each face is drawn from independent attributes, each a binary value with its own share:

* protected: ``skin`` (0 light, 1 dark), ``age`` (0 younger, 1 older: forehead lines, greying
  hair), ``sex`` (0 male-presenting: short hair, 1 female-presenting: long hair framing the face);
* not protected: ``glasses`` (0 none, 1 a dark frame round the eyes), ``background`` (0 plain,
  1 cluttered with coloured blocks).

Nuisances vary every image independently of the attributes, so that a detector errs: pose (centre,
size, face shape), lighting (overall level and a side gradient), camera blur and sensor noise.

A manipulated ("fake") face carries the trace of its generator family, added to the lit face and
then blurred and noised with it:

* ``"blend"``: the boundary of a face swap, a checkerboard seam on a ring along the face outline;
* ``"upsample"``: the periodic grid a transposed-convolution generator leaves, inside the face.

By default the trace has the same amplitude on every face, so that nothing the audit measures is
planted: :func:`artefact_visibility` lets a test check that it is equally visible in every group.
The knob ``luminance_scaling`` (0 by default) makes the amplitude follow the skin's luminance, as
blending traces do on darker skin in some real footage; an exercise turns it on.

Nothing here is a real face; it is a controlled stand-in for FaceForensics++ or DFDC, whose images
and demographic annotations cannot be loaded offline. For real data, see :func:`load_image_folder`.
"""
from __future__ import annotations

import csv
import dataclasses
import pathlib

import numpy as np

ATTRIBUTES = {"skin": ("light", "dark"), "age": ("younger", "older"),
              "sex": ("male-presenting", "female-presenting"),
              "glasses": ("none", "glasses"), "background": ("plain", "cluttered")}
PROTECTED = ("skin", "age", "sex")
ARTEFACTS = ("blend", "upsample")
SKIN = np.array([(0.74, 0.59, 0.50), (0.45, 0.31, 0.24)])       # light, dark (before lighting)
HAIR = np.array([(0.12, 0.09, 0.07), (0.35, 0.22, 0.12), (0.78, 0.66, 0.40), (0.55, 0.25, 0.12)])
GREY = np.array([0.62, 0.62, 0.62])
LUMA = np.array([0.299, 0.587, 0.114])


@dataclasses.dataclass
class Faces:
    """Images (n, 3, size, size) in [0, 1], labels (1 = fake), attributes (name -> 0/1 array) and
    per-image factors (nuisances and the trace's amplitude and visibility)."""
    x: np.ndarray
    y: np.ndarray
    attributes: dict
    factors: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> "Faces":
        return Faces(self.x[idx], self.y[idx], {k: v[idx] for k, v in self.attributes.items()},
                     {k: v[idx] for k, v in self.factors.items()})


def _check_share(name: str, value: float) -> float:
    if not 0 < value < 1:
        raise ValueError(f"the share of {name} must lie strictly between 0 and 1, not {value}")
    return value


def sample_attributes(n: int, shares: dict | None, rng: np.random.Generator) -> dict:
    """Independent binary attributes; ``shares`` gives P(attribute = 1), 0.5 where not given."""
    shares = dict(shares or {})
    unknown = set(shares) - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown attribute(s) {sorted(unknown)}; known: {list(ATTRIBUTES)}")
    return {a: (rng.random(n) < _check_share(a, shares.get(a, 0.5))).astype(np.int64) for a in ATTRIBUTES}


def _ellipse_radius(xx, yy, cx, cy, rx, ry):
    return np.sqrt(((xx[None] - cx[:, None, None]) / rx[:, None, None]) ** 2 +
                   ((yy[None] - cy[:, None, None]) / ry[:, None, None]) ** 2)


def _paint(img, mask, colour):
    """Paint ``colour`` (n, 3) where ``mask`` (n, H, W) is true."""
    return np.where(mask[:, None], colour[:, :, None, None], img)


def _background(n, size, clutter, rng):
    img = np.broadcast_to(rng.uniform(0.2, 0.8, (n, 3))[:, :, None, None], (n, 3, size, size)).copy()
    for _ in range(5):                                # coloured blocks on cluttered backgrounds
        x0, y0 = rng.integers(0, size, (2, n))
        w, h = rng.integers(size // 8 + 1, size // 3 + 1, (2, n))
        grid = np.arange(size)
        block = ((grid[None, None, :] >= x0[:, None, None]) & (grid[None, None, :] < (x0 + w)[:, None, None]) &
                 (grid[None, :, None] >= y0[:, None, None]) & (grid[None, :, None] < (y0 + h)[:, None, None]))
        img = _paint(img, block & (clutter == 1)[:, None, None], rng.uniform(0.2, 0.8, (n, 3)))
    return img


def _render(attrs: dict, size: int, rng: np.random.Generator):
    """The genuine face, lit; returns the image, the face's elliptical radius map and the skin's
    luminance at the face centre. Eyes, mouth, forehead lines and glasses darken the skin by a
    fixed amount rather than a fraction of it, so that they are as contrasted on every skin."""
    n = len(attrs["skin"])
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float64) + 0.5) / size
    cx, cy = 0.5 + rng.uniform(-0.05, 0.05, n), 0.54 + rng.uniform(-0.05, 0.05, n)
    long_face = rng.integers(0, 2, n)
    rx = np.where(long_face, 0.24, 0.28) * rng.uniform(0.92, 1.08, n)
    ry = np.where(long_face, 0.36, 0.31) * rng.uniform(0.92, 1.08, n)
    r = _ellipse_radius(xx, yy, cx, cy, rx, ry)
    img = _background(n, size, attrs["background"], rng)
    hair = HAIR[rng.integers(0, len(HAIR), n)]
    hair = np.where(attrs["age"][:, None] == 1, 0.3 * hair + 0.7 * GREY, hair)
    up = yy[None] < (cy - 0.15 * ry)[:, None, None]
    short = (r <= 1.18) & up                                            # a cap above the face
    long_ = (r <= 1.30) & (yy[None] < (cy + 0.75 * ry)[:, None, None])  # framing the face's sides
    img = _paint(img, np.where(attrs["sex"][:, None, None] == 1, long_, short), hair)
    skin = SKIN[attrs["skin"]] * rng.uniform(0.95, 1.05, (n, 1))
    img = _paint(img, r <= 1.0, skin)

    def darken(mask, amount):
        return np.where(mask[:, None], img - amount, img)

    forehead = (r <= 0.9) & (np.abs(((yy[None] - cy[:, None, None]) / ry[:, None, None]) + 0.62) < 0.05)
    img = darken(forehead & (attrs["age"] == 1)[:, None, None], 0.07)
    for dx in (-0.4, 0.4):
        ex, ey = cx + dx * rx, cy - 0.22 * ry
        d = np.sqrt((xx[None] - ex[:, None, None]) ** 2 + (yy[None] - ey[:, None, None]) ** 2) / rx[:, None, None]
        img = darken(d <= 0.13, 0.18)
        img = darken((d > 0.2) & (d <= 0.3) & (attrs["glasses"] == 1)[:, None, None], 0.15)
    mouth = (np.abs(yy[None] - (cy + 0.45 * ry)[:, None, None]) <= 0.03) & \
        (np.abs(xx[None] - cx[:, None, None]) <= (0.35 * rx)[:, None, None])
    img = darken(mouth, 0.12)
    level = rng.uniform(0.9, 1.05, n)
    tilt = rng.uniform(-0.1, 0.1, n)
    light = level[:, None, None] + tilt[:, None, None] * (xx[None] - 0.5)
    luminance = skin @ LUMA * (level + tilt * (cx - 0.5))              # at the face centre
    return img * light[:, None], r, luminance


def _trace(kind: str, r: np.ndarray, size: int) -> np.ndarray:
    """The unit pattern (n, H, W) a generator family leaves, before its amplitude; zero-mean on
    each face's support, so that it carries no brightness of its own (a brighter face would
    otherwise make it look stronger or weaker)."""
    ii, jj = np.mgrid[0:size, 0:size]
    # both supports keep a pixel or two inside the face outline: the camera blur would otherwise
    # spread the trace over the edge between skin and hair or background, whose contrast depends
    # on the skin's colour
    if kind == "blend":
        support = (r > 0.55) & (r <= 0.72)
        pattern = np.where((ii + jj) % 2 == 0, 1.0, -1.0)
    elif kind == "upsample":
        support = r <= 0.6
        pattern = np.where((ii % 2 == 0) & (jj % 2 == 0), 1.0, -1.0 / 3.0)   # a stride-2 grid
    else:
        raise ValueError(f"unknown artefact {kind!r}; known: {list(ARTEFACTS)}")
    trace = support * pattern[None]
    mean = trace.sum((1, 2)) / np.maximum(support.sum((1, 2)), 1)
    return (trace - mean[:, None, None]) * support


def _blur(img: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A separable 3-tap blur [w, 1 - 2w, w] per image (camera or compression softness)."""
    w = weight[:, None, None, None]
    for axis in (2, 3):
        before, after = np.roll(img, 1, axis), np.roll(img, -1, axis)
        img = w * before + (1 - 2 * w) * img + w * after
    return img


def _generate(n: int, size: int, artefact: str, strength: float, fake_share: float, shares: dict | None,
              luminance_scaling: float, seed: int) -> dict:
    """Every intermediate of a draw: the genuine and manipulated renderings of each face (blurred,
    before noise), the noise, the labels, the attributes, the trace's template."""
    _check_share("fakes", fake_share)
    if not 0 <= luminance_scaling <= 1:
        raise ValueError("luminance_scaling must lie in [0, 1]")
    rng = np.random.default_rng(seed)
    attrs = sample_attributes(n, shares, rng)
    fake = (rng.random(n) < fake_share).astype(np.int64)
    clean, r, luminance = _render(attrs, size, rng)
    relative = luminance / float(SKIN[0] @ LUMA)
    amplitude = strength * (1 - luminance_scaling + luminance_scaling * relative)
    trace = _trace(artefact, r, size)
    forged = clean + amplitude[:, None, None, None] * trace[:, None]
    blur = rng.uniform(0.0, 0.2, n)
    clean, forged = np.clip(_blur(clean, blur), 0, 1), np.clip(_blur(forged, blur), 0, 1)
    noise = rng.normal(0, 1, clean.shape) * rng.uniform(0.01, 0.05, (n, 1, 1, 1))
    template = _blur(np.repeat(trace[:, None], 3, 1), blur)
    return {"clean": clean, "forged": forged, "noise": noise, "fake": fake, "attributes": attrs,
            "template": template,
            "factors": {"luminance": luminance, "blur": blur, "artefact_amplitude": fake * amplitude,
                        "visibility": np.sqrt(((forged - clean) ** 2).mean((1, 2, 3)))}}


def make_faces(n: int, size: int = 32, artefact: str = "blend", strength: float = 0.16,
               fake_share: float = 0.5, shares: dict | None = None, luminance_scaling: float = 0.0,
               seed: int = 0) -> Faces:
    """``n`` faces; ``shares`` sets P(attribute = 1) per attribute (0.5 otherwise).

    The trace's amplitude is ``strength`` on every face when ``luminance_scaling`` is 0; at 1 it is
    ``strength`` times the face's luminance relative to the average light-skinned face, so fainter
    on darker skin (the knob that plants a robustness bias; off by default)."""
    g = _generate(n, size, artefact, strength, fake_share, shares, luminance_scaling, seed)
    x = np.where(g["fake"][:, None, None, None] == 1, g["forged"], g["clean"]) + g["noise"]
    return Faces(np.clip(x, 0, 1).astype(np.float32), g["fake"], g["attributes"], g["factors"])


def detectability(n: int, size: int = 32, artefact: str = "blend", seed: int = 0, **knobs) -> dict:
    """How well an oracle that knows each face's trace template tells the face from its
    manipulated twin, per value of every attribute: the area under the ROC curve of the matched
    filter (the projection of the noisy image on the template). Equal across groups when the
    generator plants nothing; it also counts what the face's own content puts in the trace's way,
    which a plain amplitude does not."""
    from scipy.stats import mannwhitneyu

    g = _generate(n, size, artefact, knobs.pop("strength", 0.16), 0.5, knobs.pop("shares", None),
                  knobs.pop("luminance_scaling", 0.0), seed)
    if knobs:
        raise TypeError(f"unknown knob(s) {sorted(knobs)}")
    t = g["template"]
    norm = np.maximum((t ** 2).sum((1, 2, 3)), 1e-12)
    score = {k: (np.clip(g[k] + g["noise"], 0, 1) * t).sum((1, 2, 3)) / norm for k in ("clean", "forged")}
    out = {}
    for a, values in g["attributes"].items():
        for v in (0, 1):
            m = values == v
            out[(a, v)] = float(mannwhitneyu(score["forged"][m], score["clean"][m]).statistic / m.sum() ** 2)
    return out


def manipulated_twin(size: int = 32, artefact: str = "blend", seed: int = 0, **knobs) -> tuple:
    """One face, genuine and manipulated (the same draw of everything else, noise included)."""
    # the label is drawn before the face, so the share alone decides it and the rest is shared
    genuine = make_faces(1, size, artefact, fake_share=1e-9, seed=seed, **knobs)
    fake = make_faces(1, size, artefact, fake_share=1 - 1e-9, seed=seed, **knobs)
    return genuine.x[0], fake.x[0]


def artefact_visibility(faces: Faces) -> dict:
    """Mean RMS difference between each face and its manipulated twin (the same face, lighting,
    blur; before noise), per attribute value: equal across groups when nothing is planted."""
    v = faces.factors["visibility"]
    return {(a, faces_value): float(v[values == faces_value].mean())
            for a, values in faces.attributes.items() for faces_value in (0, 1)}


def load_image_folder(root: str | pathlib.Path, labels_csv: str = "labels.csv",
                      label_column: str = "fake") -> Faces:
    """Real data in the usual layout: image files in ``root`` and a CSV with one row per image
    (``filename``, the label, then one 0/1 column per attribute, e.g. ``skin``, ``age``).

    Returns :class:`Faces` with images (N, 3, H, W) in [0, 1] (all images must share one size)."""
    from PIL import Image

    root = pathlib.Path(root)
    with open(root / labels_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{root / labels_csv} has no rows")
    missing = {"filename", label_column} - set(rows[0])
    if missing:
        raise ValueError(f"{labels_csv} lacks the column(s) {sorted(missing)}")
    images = [np.asarray(Image.open(root / r["filename"]).convert("RGB"), dtype=np.float32) / 255.0
              for r in rows]
    if len({im.shape for im in images}) != 1:
        raise ValueError("images differ in size; resize them first")
    x = np.stack(images).transpose(0, 3, 1, 2)
    y = np.array([int(r[label_column]) for r in rows])
    attributes = {k: np.array([int(r[k]) for r in rows]) for k in rows[0] if k not in ("filename", label_column)}
    return Faces(x, y, attributes)
