"""Chapter 4's knobs. Kept free of heavy imports: `ai4m list` and the runner read it."""
from __future__ import annotations

from ..params import Param, ParamSpec


def _check_fractions(values: list[float]) -> str | None:
    if any(not 0 < v < 2 for v in values):
        return "every cut must be a fraction of the model scale strictly between 0 and 2"
    return None


def _check_datasets(values: list[str]) -> str | None:
    unknown = sorted(set(values) - {"digits", "shapes"})
    if unknown:
        return f"unknown dataset(s) {unknown}; choose from digits, shapes"
    if len(set(values)) != len(values):
        return "each dataset may appear once"
    return None


PARAMS = ParamSpec({
    "datasets": Param(list, ["digits", "shapes"], item=str, min_items=1, check=_check_datasets,
                      help="digits (8x8, labelled by digit) and/or generated shapes (32x32, "
                           "labelled by shape; colour and texture vary freely)"),
    "seeds": Param(int, 1, full=5, min=1, max=32, help="models trained from different seeds"),
    "channels": Param(int, 32, full=64, min=4, max=1024, help="units of the analysed (GAP) layer"),
    "train_steps": Param(int, 600, full=1500, min=10, max=100000, help="Adam steps on the digits"),
    "shapes_steps": Param(int, 300, full=1500, min=10, max=100000, help="Adam steps on the shapes"),
    "n_images": Param(int, 3000, full=6000, min=1000, max=100000, help="generated shape images"),
    "top_n": Param(int, 100, min=10, max=1000, help="top images per direction that are clustered"),
    "eval_top": Param(int, 50, min=5, max=400, help="top evaluation images that measure purity"),
    "cut_rule": Param(str, "silhouette", choices=("silhouette", "fixed"),
                      help="silhouette: per model, the cut of highest mean silhouette on the probe "
                           "split; fixed: `threshold`"),
    "threshold": Param(float, 0.5, min=0.01, max=1.99,
                       help="Ward cut (fraction of the model scale) when cut_rule is fixed"),
    "thresholds": Param(list, [0.3, 0.5, 0.7, 0.9, 1.1], item=float, min_items=2,
                        check=_check_fractions, help="cuts swept (and chosen from)"),
    "min_cluster": Param(int, 5, min=1, max=100, help="smallest cluster kept after outlier removal"),
    "n_random": Param(int, 20, min=1, max=1000, help="random directions in the control"),
}, joint_checks=[
    lambda v: "eval_top must not exceed top_n" if v["eval_top"] > v["top_n"] else None,
])
