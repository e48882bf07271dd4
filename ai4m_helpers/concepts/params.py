"""Chapter 4's knobs. Kept free of heavy imports: `ai4m list` and the runner read it."""
from __future__ import annotations

from ..params import Param, ParamSpec


def _check_fractions(values: list[float]) -> str | None:
    if any(not 0 < v < 1 for v in values):
        return "every cut must be a fraction strictly between 0 and 1"
    return None


PARAMS = ParamSpec({
    "dataset": Param(str, "digits", full="shapes", choices=("digits", "shapes"),
                     help="digits (8x8) or generated shape x colour x texture compositions (32x32)"),
    "seeds": Param(int, 1, full=5, min=1, max=32, help="models trained from different seeds"),
    "channels": Param(int, 32, full=64, min=4, max=1024, help="units of the analysed (GAP) layer"),
    "train_steps": Param(int, 600, full=1500, min=10, max=100000, help="Adam steps"),
    "n_images": Param(int, 6000, min=1000, max=100000, help="generated images (shapes only)"),
    "top_n": Param(int, 100, min=10, max=1000, help="top images per direction that are clustered"),
    "eval_top": Param(int, 50, min=5, max=400, help="top evaluation images that measure purity"),
    "threshold": Param(float, 0.5, min=0.01, max=0.99, help="Ward cut, fraction of the largest merge"),
    "thresholds": Param(list, [0.3, 0.5, 0.7], item=float, min_items=2, check=_check_fractions,
                        help="cuts for the granularity sweep"),
    "min_cluster": Param(int, 5, min=1, max=100, help="smallest cluster kept after outlier removal"),
    "n_random": Param(int, 20, min=1, max=1000, help="random directions in the control"),
}, joint_checks=[
    lambda v: "eval_top must not exceed top_n" if v["eval_top"] > v["top_n"] else None,
    lambda v: (None if any(abs(v["threshold"] - t) < 1e-9 for t in v["thresholds"])
               else f"threshold {v['threshold']} must be one of thresholds {v['thresholds']}"),
])
