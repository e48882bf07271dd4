"""Auditing a deepfake detector: group fairness of its decisions (AIF360) and robustness bias,
the per-group distance to its decision boundary (ART DeepFool, HopSkipJump)."""
from .params import PARAMS

__all__ = ["PARAMS"]
