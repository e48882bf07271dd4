"""Chapter 8's knobs. Kept free of heavy imports: `ai4m list` and the runner read it."""
from __future__ import annotations

from ..params import Param, ParamSpec

DATASETS = ("blend", "upsample")     # the two generator families (stand-ins for two benchmarks)


def _share(v: float) -> str | None:
    return None if 0 < v < 1 else "must lie strictly between 0 and 1"


def _datasets(v: list) -> str | None:
    unknown = [d for d in v if d not in DATASETS]
    if unknown:
        return f"unknown dataset(s) {unknown}; known: {list(DATASETS)}"
    return None if len(set(v)) == len(v) else "lists a dataset twice"


def _hsj_within_white(values: dict) -> str | None:
    return None if values["n_hsj"] <= values["n_white"] else "n_hsj must not exceed n_white (its images are among them)"


PARAMS = ParamSpec({
    "datasets": Param(list, list(DATASETS), item=str, min_items=1, check=_datasets,
                      help="generator families audited, each its own benchmark: blend (face-swap seam), "
                           "upsample (generator grid)"),
    "size": Param(int, 24, full=32, choices=(16, 24, 32, 48, 64), help="image side in pixels"),
    "n_train": Param(int, 2000, full=8000, min=200, max=200000, help="training images"),
    "n_test": Param(int, 2000, full=10000, min=200, max=100000,
                    help="test images (predictions are cheap: many, for tight output metrics)"),
    "train_group_share": Param(float, 0.1, check=_share, help="share of dark-skinned faces in training"),
    "test_group_share": Param(float, 0.5, check=_share, help="share of dark-skinned faces in the test"),
    "artefact_strength": Param(float, 0.16, min=0.0, max=1.0,
                               help="amplitude of the manipulation's trace (the same on every face)"),
    "luminance_scaling": Param(float, 0.0, min=0.0, max=1.0,
                               help="0: trace equally strong on every skin; 1: proportional to skin "
                                    "luminance (plants a bias: an exercise)"),
    "epochs": Param(int, 8, full=12, min=1, max=200, help="detector training epochs"),
    "width": Param(int, 16, min=4, max=256, help="channels of the detector's first conv"),
    "adv_epochs": Param(int, 2, full=4, min=1, max=100,
                        help="epochs of ART adversarial fine-tuning for the defended detector"),
    "adv_eps": Param(float, 0.004, min=1e-4, max=0.1, help="L-infinity budget of the adversarial training"),
    "seeds": Param(int, 1, full=5, min=1, max=20, help="detectors trained per dataset and condition"),
    "n_white": Param(int, 80, full=400, min=8, max=10000,
                     help="test images attacked with DeepFool and the PGD search (a quarter per skin tone x label)"),
    "pgd_steps": Param(int, 5, full=10, min=1, max=500, help="PGD steps per budget in the minimum-budget search"),
    "n_hsj": Param(int, 24, full=48, min=8, max=5000,
                  help="test images attacked with HopSkipJump (among the white-box ones)"),
    "hsj_iter": Param(int, 10, full=20, min=1, max=500, help="HopSkipJump iterations"),
    "hsj_max_eval": Param(int, 80, full=200, min=10, max=100000, help="HopSkipJump queries per gradient estimate"),
    "bootstrap": Param(int, 1000, full=2000, min=100, max=100000, help="bootstrap resamples for intervals"),
}, joint_checks=[_hsj_within_white])
