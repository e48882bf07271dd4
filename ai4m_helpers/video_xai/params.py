"""Chapter 10's knobs. Kept free of heavy imports: `ai4m list` and the runner read it."""
from __future__ import annotations

from ..params import Param, ParamSpec


def _multiple_of_4(v: int) -> str | None:
    return None if v % 4 == 0 else "must be a multiple of 4 (the feature grid is 4 x 4)"


def _lengths(values: dict) -> str | None:
    if values["min_frames"] > values["max_frames"]:
        return "min_frames must not exceed max_frames"
    if values["min_frames"] < 4 * values["shot_min"]:
        return "min_frames must hold at least four shots of shot_min frames (k = 1..3 are masked)"
    if values["shot_min"] > values["shot_max"]:
        return "shot_min must not exceed shot_max"
    return None


PARAMS = ParamSpec({
    "seeds": Param(int, 1, full=3, min=1, max=20, help="summarisers trained (each on new videos)"),
    "train_videos": Param(int, 8, full=40, min=2, max=1000, help="videos the summariser trains on"),
    "test_videos": Param(int, 6, full=10, min=1, max=1000, help="videos explained"),
    "min_frames": Param(int, 60, full=120, min=16, max=5000, help="shortest video (frames at 2 fps)"),
    "max_frames": Param(int, 100, full=300, min=16, max=5000, help="longest video (frames at 2 fps)"),
    "shot_min": Param(int, 6, min=2, max=500, help="shortest shot (frames)"),
    "shot_max": Param(int, 14, full=24, min=2, max=500, help="longest shot (frames)"),
    "size": Param(int, 32, full=64, min=8, max=256, check=_multiple_of_4, help="frame size in pixels"),
    "dim": Param(int, 128, full=1024, min=8, max=4096, help="frame feature dimensions"),
    "block": Param(int, 16, full=60, min=2, max=1000, help="CA-SUM's attention block size"),
    "epochs": Param(int, 100, full=400, min=1, max=5000, help="training epochs"),
    "sigma": Param(float, 0.5, min=0.05, max=0.95, help="length regulariser's target mean score"),
    "batch_videos": Param(int, 20, full=40, min=1, max=1000, help="videos per gradient step (accumulated; 20 for SumMe, 40 for TVSum)"),
    "lime_fragments": Param(int, 500, full=20000, min=10, max=100000, help="LIME perturbations per video"),
    "lime_objects": Param(int, 200, full=2000, min=10, max=100000, help="LIME perturbations per fragment"),
    "explained_fragments": Param(int, 3, min=1, max=10, help="fragments explained at object level, per method"),
    "random_rankings": Param(int, 20, min=1, max=1000, help="random rankings averaged for the baseline"),
}, joint_checks=(_lengths,))
