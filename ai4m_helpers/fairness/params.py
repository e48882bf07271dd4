"""Chapter 8's knobs. Kept free of heavy imports: `ai4m list` and the runner read it."""
from __future__ import annotations

from ..params import Param, ParamSpec


def _share(v: float) -> str | None:
    return None if 0 < v < 1 else "must lie strictly between 0 and 1"


PARAMS = ParamSpec({
    "size": Param(int, 32, full=64, choices=(16, 32, 64), help="image side in pixels"),
    "n_train": Param(int, 2000, full=20000, min=200, max=200000, help="training images"),
    "n_test": Param(int, 1000, full=4000, min=100, max=100000, help="test images"),
    "train_group_share": Param(float, 0.1, check=_share, help="share of dark-skinned faces in training"),
    "test_group_share": Param(float, 0.5, check=_share, help="share of dark-skinned faces in the test"),
    "artefact_light": Param(float, 0.35, min=0.0, max=2.0, help="seam strength on light skin"),
    "artefact_dark": Param(float, 0.35, min=0.0, max=2.0, help="seam strength on dark skin"),
    "epochs": Param(int, 6, full=8, min=1, max=200, help="detector training epochs"),
    "width": Param(int, 16, full=32, min=4, max=256, help="channels of the detector's first conv"),
    "seeds": Param(int, 1, full=3, min=1, max=20, help="detectors trained per condition"),
    "n_deepfool": Param(int, 200, full=1000, min=10, max=10000, help="test images attacked with DeepFool"),
    "pgd_steps": Param(int, 10, full=20, min=1, max=500,
                       help="PGD steps per budget in the minimum-budget search (DeepFool's images)"),
    "n_hsj": Param(int, 24, full=200, min=4, max=5000, help="test images attacked with HopSkipJump"),
    "hsj_iter": Param(int, 10, full=40, min=1, max=500, help="HopSkipJump iterations"),
    "hsj_max_eval": Param(int, 80, full=1000, min=10, max=100000, help="HopSkipJump queries per gradient estimate"),
    "bootstrap": Param(int, 1000, full=2000, min=100, max=100000, help="bootstrap resamples for intervals"),
})
