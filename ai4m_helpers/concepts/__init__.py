"""Concept vectors: splitting polysemantic neurons into directions of activation space (Ward
clustering to choose k, k-means, outlier removal), with purity controls and Captum attributions."""
from .params import PARAMS
from .pipeline import Split, SplitConfig, dead_units, split_direction, svd_directions

__all__ = ["PARAMS", "Split", "SplitConfig", "dead_units", "split_direction", "svd_directions"]
