"""The chapter's tasks: data, outputs, the expert's rules, and the regions used to test coverage."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..data.digits import load_digits_images
from .rules import InputPredicate, KnowledgeBase


@dataclasses.dataclass
class Task:
    name: str
    x_pool: np.ndarray           # float32 (N, d)
    y_pool: np.ndarray           # {0, 1} (N, outputs)
    x_test: np.ndarray
    y_test: np.ndarray
    kb: KnowledgeBase
    region_pool: np.ndarray      # region id of every pool sample (quadrant, class, ...)
    region_names: list
    class_outputs: slice         # outputs that are the classes (macro-F1 is taken over these)
    rules_in_words: list         # what an expert would say, one line per rule

    @property
    def outputs(self) -> list[str]:
        return self.kb.outputs

    def tensors(self, device) -> dict[str, torch.Tensor]:
        return {k: torch.tensor(getattr(self, k), device=device, dtype=torch.float32)
                for k in ("x_pool", "y_pool", "x_test", "y_test")}


# -- XOR ----------------------------------------------------------------------------------------
XOR_RULES = ["xor -> (x1 and not x2) or (x2 and not x1)",
             "(x1 and not x2) or (x2 and not x1) -> xor"]


def xor_task(n_pool: int, n_test: int, seed: int, threshold: float = 0.5) -> Task:
    """Uniform points in the unit square; the label is x1 > 0.5 XOR x2 > 0.5. ``threshold`` is
    where the expert's input predicates put the boundary (0.5 is right; anything else, wrong)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n_pool + n_test, 2)).astype(np.float32)
    y = ((x[:, 0] > 0.5) != (x[:, 1] > 0.5)).astype(np.float32)[:, None]
    region = (x[:, 0] > 0.5).astype(int) * 2 + (x[:, 1] > 0.5).astype(int)
    kb = KnowledgeBase(XOR_RULES, ["xor"],
                       [InputPredicate("x1", 0, threshold), InputPredicate("x2", 1, threshold)])
    return Task("xor", x[:n_pool], y[:n_pool], x[n_pool:], y[n_pool:], kb, region[:n_pool],
                ["x1<.5, x2<.5", "x1<.5, x2>.5", "x1>.5, x2<.5", "x1>.5, x2>.5"], slice(0, 1),
                ["if the output is 1, exactly one of x1, x2 is above 0.5",
                 "if exactly one of x1, x2 is above 0.5, the output is 1"])


# -- Iris ---------------------------------------------------------------------------------------
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
IRIS_RULES = ["not long_petal <-> setosa",
              "long_petal and not wide_petal <-> versicolor",
              "long_petal and wide_petal <-> virginica",
              "exactly_one(setosa, versicolor, virginica)"]


def iris_task(n_test: int, seed: int) -> Task:
    """Iris, features min-max scaled; petal length > 0.3 is 'long', petal width > 0.6 'wide'."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    data = load_iris()
    x = data.data.astype(np.float32)
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    y = np.eye(3, dtype=np.float32)[data.target]
    x_pool, x_test, y_pool, y_test, t_pool, _ = train_test_split(
        x, y, data.target, test_size=n_test, stratify=data.target, random_state=seed)
    kb = KnowledgeBase(IRIS_RULES, IRIS_CLASSES,
                       [InputPredicate("long_petal", 2, 0.3), InputPredicate("wide_petal", 3, 0.6)])
    return Task("iris", x_pool, y_pool, x_test, y_test, kb, t_pool, IRIS_CLASSES, slice(0, 3),
                ["short petals mean setosa, and only setosa has them",
                 "long but narrow petals mean versicolor", "long and wide petals mean virginica",
                 "every flower is exactly one species"])


# -- digits with knowledge ------------------------------------------------------------------------
DIGIT_NAMES = [f"d{i}" for i in range(10)]
ATTRIBUTES = {"even": {0, 2, 4, 6, 8}, "ge5": {5, 6, 7, 8, 9}, "loop": {0, 6, 8, 9},
              "prime": {2, 3, 5, 7}}


def digit_rules() -> list[str]:
    """Each digit implies its attributes; each attribute implies one of its digits; one digit each."""
    rules = []
    for d in range(10):
        parts = [a if d in members else f"not {a}" for a, members in ATTRIBUTES.items()]
        rules.append(f"d{d} -> " + " and ".join(parts))
    for a, members in ATTRIBUTES.items():
        rules.append(f"{a} -> " + " or ".join(f"d{d}" for d in sorted(members)))
    rules.append("exactly_one(" + ", ".join(DIGIT_NAMES) + ")")
    return rules


def digits_task(n_test: int, seed: int) -> Task:
    """scikit-learn digits as a multi-label task: 10 digit outputs and 4 attribute outputs."""
    from sklearn.model_selection import train_test_split

    images, target = load_digits_images()
    x = images.reshape(len(target), -1)
    digit = np.eye(10, dtype=np.float32)[target]
    attrs = np.stack([np.isin(target, sorted(m)) for m in ATTRIBUTES.values()], 1).astype(np.float32)
    y = np.concatenate([digit, attrs], 1)
    x_pool, x_test, y_pool, y_test, t_pool, _ = train_test_split(
        x, y, target, test_size=n_test, stratify=target, random_state=seed)
    kb = KnowledgeBase(digit_rules(), DIGIT_NAMES + list(ATTRIBUTES))
    words = [f"a {d} is {', '.join(a if d in m else 'not ' + a for a, m in ATTRIBUTES.items())}"
             for d in range(10)]
    words += [f"only {', '.join(map(str, sorted(m)))} are {a}" for a, m in ATTRIBUTES.items()]
    words += ["every image shows exactly one digit"]
    return Task("digits", x_pool, y_pool, x_test, y_test, kb, t_pool, [str(d) for d in range(10)],
                slice(0, 10), words)


def biased_initial(task: Task, n0: int, rng: np.random.Generator, regions=(0,)) -> np.ndarray:
    """The first labels all come from a few regions (one quadrant, one class...)."""
    candidates = np.flatnonzero(np.isin(task.region_pool, regions))
    return rng.choice(candidates, size=n0, replace=False)


def subregion_initial(task: Task, n0: int, rng: np.random.Generator) -> np.ndarray:
    """A biased start from one half of the input space, which may hold several classes but leaves
    the other half unseen: on XOR the paper's own, x1 < 0.5; elsewhere its generalisation, the
    half of the pool below the median of its first principal component."""
    if task.name == "xor":
        candidates = np.flatnonzero(task.x_pool[:, 0] < 0.5)
    else:
        centred = task.x_pool - task.x_pool.mean(0)
        score = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
        candidates = np.flatnonzero(score < np.median(score))
    return rng.choice(candidates, size=n0, replace=False)


def random_initial(task: Task, n0: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(len(task.x_pool), size=n0, replace=False)
