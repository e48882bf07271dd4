"""Chapter 6's knobs. Kept free of heavy imports: `ai4m list` and the runner read it."""
from __future__ import annotations

import math

from ..params import Param, ParamSpec

EDGE_UNITS = ("directed edge", "undirected edge")


def _positive_finite_sorted(values: list) -> str | None:
    if any(not (v > 0 and math.isfinite(v)) for v in values):
        return "every ε must be a positive finite number (ε = ∞ runs anyway, as the non-private reference)"
    if sorted(set(values)) != list(values):
        return "list each ε once, in increasing order"
    return None


def _split_fits(values: dict) -> str | None:
    n_train = int(0.75 * values["nodes"])
    if values["batch"] > n_train:
        return f"batch ({values['batch']}) must not exceed the training nodes (75 % of nodes = {n_train})"
    if values["attack_per_class"] * values["classes"] > values["nodes"]:
        return "attack_per_class x classes must not exceed nodes"
    return None


PARAMS = ParamSpec({
    "seeds": Param(int, 2, full=5, min=1, max=50, help="replicates (a new graph, split, weights and noise each)"),
    "nodes": Param(int, 3000, full=20000, min=200, max=2_000_000, help="nodes of the generated graph"),
    "classes": Param(int, 5, min=2, max=20, help="node classes"),
    "features": Param(int, 32, min=2, max=4096, help="node feature dimensions"),
    "signal": Param(float, 1.2, min=0.0, max=100.0, help="distance of the class means in the features"),
    "homophily": Param(float, 0.5, full=0.4, min=0.0, max=1.0, help="share of edges drawn within a node's class"),
    "degree": Param(float, 30.0, full=60.0, min=1.0, max=1000.0, help="mean degree of the generated graph"),
    "degree_spread": Param(float, 0.8, min=0.0, max=3.0,
                           help="spread of the log-normal degree propensities (0: all nodes alike)"),
    "hops": Param(int, 2, min=1, max=6, help="GAP's aggregation hops K"),
    "stages": Param(int, 2, min=1, max=6, help="ProGAP's stages after the first (its depth L)"),
    "hidden": Param(int, 16, min=2, max=1024, help="hidden width of every MLP"),
    "dropout": Param(float, 0.0, min=0.0, max=0.9, help="dropout in every MLP"),
    "lr": Param(float, 0.01, min=1e-5, max=1.0, help="Adam learning rate"),
    "epochs": Param(int, 100, min=1, max=10000, help="full-batch epochs (edge level and non-private)"),
    "dp_epochs": Param(int, 10, min=1, max=1000, help="DP-SGD epochs of every node-level training"),
    "batch": Param(int, 256, min=8, max=1_000_000,
                   help="expected DP-SGD batch (Poisson sampling; the paper's 256 for its smallest graph)"),
    "degree_bound": Param(int, 50, full=100, min=1, max=100000,
                          help="node level: out-degree bound D (sensitivity √D)"),
    "eps_edge": Param(list, [0.5, 1.0, 2.0, 4.0], full=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0], item=float,
                      check=_positive_finite_sorted, help="edge-level ε grid"),
    "eps_node": Param(list, [4.0, 8.0, 16.0], full=[2.0, 4.0, 8.0, 16.0, 32.0], item=float,
                      check=_positive_finite_sorted, help="node-level ε grid"),
    "edge_unit": Param(str, "directed edge", choices=EDGE_UNITS,
                       help="what edge-level privacy protects: one directed edge (Δ = 1, as the papers' "
                            "code) or an undirected one (Δ = √2)"),
    "attack_per_class": Param(int, 150, full=500, min=10, max=100000,
                              help="nodes per class drawn for the membership attack (40 % members)"),
}, joint_checks=(_split_fits,))
