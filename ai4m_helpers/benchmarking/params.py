"""Chapter 9's knobs. Kept free of heavy imports: `ai4m list` and the runner read it."""
from __future__ import annotations

from ..params import Param, ParamSpec
from .bundle import DATASETS


def _increasing(values: list) -> str | None:
    if sorted(set(values)) != list(values):
        return "list each size once, in increasing order"
    return None


def _sizes_fit(values: dict) -> str | None:
    if values["dataset"] == "digits" and max(values["train_sizes"]) > 1079:
        return "digits leaves 1,079 examples for training (train_sizes must not exceed it)"
    if values["dataset"] != "digits" and max(values["train_sizes"]) > 100:
        return f"{values['dataset']} is small: keep train_sizes at most 100"
    return None


PARAMS = ParamSpec({
    "seeds": Param(int, 2, full=3, min=2, max=20,
                   help="runs of every method submission (the first and its reruns: the replicates)"),
    "dataset": Param(str, "digits", choices=DATASETS, help="the task (it ships with scikit-learn)"),
    "train_sizes": Param(list, [250, 500, 750, 1000], item=int, min=20, max=100000, check=_increasing, min_items=3,
                         help="training sizes of the time-metric competitions (the largest is the main one's)"),
    "jobs": Param(int, 2, min=1, max=64, help="workers draining the queue"),
    "backend": Param(str, "local", choices=("local", "ray"),
                     help="workers as local processes, or Ray tasks (a local Ray instance)"),
    "wall_s": Param(float, 5.0, full=15.0, min=1.0, max=3600.0, help="wall-clock limit of one submission"),
    "cpu_s": Param(int, 10, min=1, max=3600, help="CPU-time limit of one submission"),
    "memory_mb": Param(int, 1024, full=8192, min=256, max=1_000_000,
                       help="memory limit of one submission: the address space of each of its processes (torch "
                            "alone needs a few GB of it) and, where it has a control group, the "
                            "memory of all its processes together"),
    "torch_cnn": Param(bool, False, full=True, help="enter a small torch CNN too (its FLOPs are counted)"),
}, joint_checks=(_sizes_fit,))
