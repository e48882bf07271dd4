"""Chapter 6's figures."""
from __future__ import annotations

import math

import numpy as np

COLOURS = {"GAP": "tab:blue", "ProGAP": "tab:green", "MLP": "tab:grey", "MLP-DP": "tab:grey"}


def accuracy_vs_epsilon(ax, curves, level: str, chance: float) -> None:
    """Mean test accuracy against ε with 95 % intervals over seeds; the non-private models
    (ε = ∞) as dashed lines, the features-only MLP (edge level) as a dotted one."""
    part = curves[curves["level"] == level]
    for method, rows in part.groupby("method", sort=False):
        finite = rows[np.isfinite(rows["epsilon"]) & (rows["epsilon"] > 0)].sort_values("epsilon")
        colour = COLOURS.get(method, None)
        if len(finite):
            ax.plot(finite["epsilon"], finite["accuracy"], "o-", color=colour, label=method, ms=4)
            ax.fill_between(finite["epsilon"], finite["ci low"], finite["ci high"], color=colour, alpha=0.2)
        for _, r in rows[~np.isfinite(rows["epsilon"])].iterrows():
            ax.axhline(r["accuracy"], color=colour, ls="--", lw=1, label=f"{method}, ε = ∞")
        for _, r in rows[rows["epsilon"] == 0].iterrows():
            ax.axhline(r["accuracy"], color=colour, ls=":", lw=1.2, label=f"{method} (no edges)")
    ax.axhline(chance, color="black", lw=0.6, alpha=0.5)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("ε (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{level} level", fontsize=10)
    ax.legend(fontsize=7, frameon=False)


def degree_histogram(ax, degrees, bound: int | None = None) -> None:
    degrees = np.asarray(degrees)
    bins = np.unique(np.geomspace(1, max(2, degrees.max()), 40).astype(int))
    ax.hist(degrees, bins=bins, color="tab:blue", alpha=0.8)
    if bound is not None:
        ax.axvline(bound, color="tab:red", lw=1, label=f"degree bound D = {bound}")
        ax.legend(fontsize=7, frameon=False)
    ax.set_xscale("log")
    ax.set_xlabel("degree")
    ax.set_ylabel("nodes")


def noise_vs_signal(ax, curves, degrees: dict, sensitivity: dict, dims: int) -> None:
    """Why degree matters, per level: the norm of the noise GAP adds to an aggregate (σΔ√dims)
    against ε, and the norm of a median node's sum of d unit vectors (between √d for unrelated
    directions and d for aligned ones), d its in-degree in the graph that level reads."""
    for (level, sens), colour in zip(sensitivity.items(), ("tab:blue", "tab:purple")):
        part = curves[(curves["level"] == level) & (curves["method"] == "GAP")]
        part = part[np.isfinite(part["epsilon"])].sort_values("epsilon")
        ax.plot(part["epsilon"], part["sigma"] * sens * math.sqrt(dims), "o-", color=colour, ms=4,
                label=f"{level} level: norm of the noise")
        med = float(np.median(degrees[level]))
        ax.axhspan(math.sqrt(med), med, color=colour, alpha=0.15,
                   label=f"{level} level: a median node's sum ({med:.0f} neighbours)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("ε (log scale)")
    ax.set_ylabel("vector norm")
    ax.legend(fontsize=7, frameon=False)


def attack_auc(ax, attack) -> None:
    """Membership-attack AUC per ε (each seed a point), against chance."""
    labels = ["∞" if math.isinf(e) else f"{e:g}" for e in sorted(attack["epsilon"].unique())]
    for i, eps in enumerate(sorted(attack["epsilon"].unique())):
        vals = attack[attack["epsilon"] == eps]["attack AUC"]
        ax.scatter(np.full(len(vals), i), vals, color="tab:red", alpha=0.7)
        ax.plot([i - 0.2, i + 0.2], [vals.mean()] * 2, color="black")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("node-level ε")
    ax.set_ylabel("attack AUC")
