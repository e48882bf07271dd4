"""How monosemantic is a direction? Purity of its top images on a split that did not build it,
against controls."""
from __future__ import annotations

import numpy as np

from .pipeline import Split, top_images


def purity(labels: np.ndarray) -> float:
    """Share of the most frequent label."""
    if len(labels) == 0:
        return float("nan")
    return float(np.bincount(labels).max() / len(labels))


def chance_purity(labels: np.ndarray, n: int, rng: np.random.Generator, draws: int = 200) -> float:
    """The purity of n images drawn at random: what a direction blind to the attribute scores
    (higher for attributes with few values: about 0.4 for three values and 50 images)."""
    return float(np.mean([purity(rng.choice(labels, size=n, replace=False)) for _ in range(draws)]))


def above_chance(value: float, chance: float) -> float:
    """Purity rescaled so that chance is 0 and a pure set is 1, comparable across attributes."""
    return (value - chance) / (1 - chance) if chance < 1 else float("nan")


def direction_purity(acts: np.ndarray, labels: np.ndarray, direction: np.ndarray, n: int,
                     ranking: str = "dot") -> float:
    """Purity of the top-n images along a direction (on evaluation activations)."""
    return purity(labels[top_images(acts, direction, n, ranking)])


def random_orthant_directions(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Random unit directions with non-negative entries (where ReLU activations live)."""
    v = np.abs(rng.normal(size=(n, dim)))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def random_subset_means(probe_acts: np.ndarray, split: Split, rng: np.random.Generator) -> np.ndarray:
    """Control: means of random subsets of the same top images, one per concept, same sizes."""
    out = []
    for members in split.members:
        subset = rng.choice(split.top, size=len(members), replace=False)
        mean = probe_acts[subset].mean(0)
        out.append(mean / (np.linalg.norm(mean) + 1e-12))
    return np.array(out) if out else np.zeros((0, probe_acts.shape[1]))


def class_mean_directions(probe_acts: np.ndarray, probe_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Supervised reference: the normalised mean probe activation of each label value. It uses
    the labels the other directions never see, but it is no upper bound: a mean over a whole class
    need not rank that class's images first (under the dot ranking, high-norm images of any class
    can outrank them)."""
    means = np.stack([probe_acts[probe_labels == c].mean(0) for c in range(n_classes)])
    return means / (np.linalg.norm(means, axis=1, keepdims=True) + 1e-12)
