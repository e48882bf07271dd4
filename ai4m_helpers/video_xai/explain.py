"""Explanations of a video summariser at two granularities (Tsigos, Apostolidis & Mezaris 2024).

Fragment level: which fragments of the video moved the frame scores most and least.
- *attention*, model-specific: a fragment's score is the mean of the diagonal of CA-SUM's
  concentrated attention over its frames;
- *LIME*, model-agnostic: random subsets of fragments are replaced by black frames, the summariser
  scores each perturbed video, and a weighted ridge regression of the mean frame score on the
  kept/masked pattern gives each fragment a coefficient (kernel sqrt(exp(−d² / 0.25²)), d the
  cosine distance of the pattern to "nothing masked").

Object level: within a fragment, which objects moved its frames' scores: LIME again, with the
keyframe's objects as the features, blacked out in every frame of the fragment and the fragment's
features re-extracted.
"""
from __future__ import annotations

import numpy as np

from .train import attention, score, score_masked

KERNEL_WIDTH = 0.25


def fragment_frames(bounds: np.ndarray) -> list[np.ndarray]:
    return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def attention_scores(model, features: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Per fragment: the mean of the attention diagonal over its frames."""
    diag = np.diag(attention(model, features))
    return np.array([diag[f].mean() for f in fragment_frames(bounds)])


def mask_fragments(features: np.ndarray, bounds: np.ndarray, keep: np.ndarray, black: np.ndarray) -> np.ndarray:
    """Copies of the video (N, T, d), one per row of ``keep`` (N, fragments): the frames of every
    fragment marked 0 replaced by a black frame's features."""
    frames_kept = np.repeat(keep, np.diff(bounds), axis=1).astype(bool)          # (N, T)
    return np.where(frames_kept[..., None], features[None], black[None, None, :]).astype(np.float32, copy=False)


def lime_weights(patterns: np.ndarray) -> np.ndarray:
    """sqrt(exp(−d² / width²)), d the cosine distance between a pattern and all ones."""
    norms = np.linalg.norm(patterns, axis=1) * np.sqrt(patterns.shape[1])
    cosine = np.divide(patterns.sum(axis=1), norms, out=np.zeros(len(patterns)), where=norms > 0)
    distance = 1 - cosine
    return np.sqrt(np.exp(-(distance ** 2) / KERNEL_WIDTH ** 2))


def fit_lime(patterns: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Coefficients of a weighted ridge regression (α = 1) of the labels on the patterns."""
    from sklearn.linear_model import Ridge

    return Ridge(alpha=1.0).fit(patterns, labels, sample_weight=lime_weights(patterns)).coef_


def random_patterns(n: int, items: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random 0/1 patterns over ``items``, the first all ones (nothing masked)."""
    patterns = rng.integers(0, 2, (n, items))
    patterns[0] = 1
    return patterns


def lime_fragments(model, features: np.ndarray, bounds: np.ndarray, black: np.ndarray, samples: int,
                   seed: int) -> np.ndarray:
    """Per fragment: its LIME coefficient for the video's mean frame score."""
    patterns = random_patterns(samples, len(bounds) - 1, np.random.default_rng(seed))
    labels = score_masked(model, features, bounds, patterns, black).mean(axis=1)
    return fit_lime(patterns, labels)


def keyframe(scores: np.ndarray, frames: np.ndarray) -> int:
    """The fragment's frame with the highest importance score."""
    return int(frames[np.argmax(scores[frames])])


def black_out_objects(frames: np.ndarray, ids: np.ndarray, objects: list[int], keep: np.ndarray) -> np.ndarray:
    """Copies of a fragment's frames (N, F, H, W, 3), one per row of ``keep`` (N, objects): every
    pixel of each object marked 0 set to black, in every frame."""
    out = np.repeat(frames[None], len(keep), axis=0)
    for k, obj in enumerate(objects):
        hidden = keep[:, k] == 0
        if hidden.any():
            out[hidden] = np.where((ids == obj)[None, ..., None], 0.0, out[hidden])
    return out


def lime_objects(model, features: np.ndarray, frames: np.ndarray, ids: np.ndarray, fragment: np.ndarray,
                 extractor, samples: int, seed: int, chunk: int = 128) -> tuple[list[int], np.ndarray]:
    """The keyframe's objects and their LIME coefficients for the mean score of the fragment's
    frames: objects blacked out in all the fragment's frames, its features re-extracted and put
    back into the whole video."""
    scores = score(model, features)
    key = keyframe(scores, fragment)
    objects = [int(o) for o in np.unique(ids[key]) if o > 0]
    if not objects:
        return [], np.zeros(0)
    patterns = random_patterns(samples, len(objects), np.random.default_rng(seed))
    labels = []
    for i in range(0, samples, chunk):                 # a chunk of perturbed copies at a time (memory)
        part = patterns[i:i + chunk]
        pixels = black_out_objects(frames[fragment], ids[fragment], objects, part)    # (n, F, H, W, 3)
        videos = np.repeat(features[None], len(part), axis=0)
        videos[:, fragment] = extractor(pixels.reshape(-1, *pixels.shape[2:])).reshape(len(part), len(fragment), -1)
        labels.append(score(model, videos)[:, fragment].mean(axis=1))
    return objects, fit_lime(patterns, np.concatenate(labels))
