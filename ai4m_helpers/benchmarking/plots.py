"""Chapter 9's figures."""
from __future__ import annotations

import numpy as np


def time_vs_size(ax, subs, methods) -> None:
    """Prediction time per 1,000 predictions against the training size, every run a point, the
    mean a line (log-log axes: a slope of 1 is linear growth)."""
    for method in methods:
        part = subs[(subs["method"] == method) & subs["predict_s"].notna()]
        ax.plot(part["train size"], part["ms_per_1k_predictions"], "o", ms=4, alpha=0.6)
        mean = part.groupby("train size")["ms_per_1k_predictions"].mean()
        ax.plot(mean.index, mean.values, "-", color=ax.lines[-1].get_color(), label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("ms per 1,000 predictions")
    ax.legend(fontsize=8)


def leaderboard_costs(ax, board) -> None:
    """Accuracy against the ingestion step's elapsed time, one point per leaderboard entry."""
    ax.scatter(board["wall_s"], board["accuracy"], s=30)
    for _, row in board.iterrows():
        ax.annotate(row["participant"], (row["wall_s"], row["accuracy"]), fontsize=8, xytext=(4, 2),
                    textcoords="offset points")
    ax.set_xlabel("ingestion time (s): start-up, fit and predict")
    ax.set_ylabel("public accuracy")


def status_grid(ax, faulty) -> None:
    """Expected against observed status of the planted faulty submissions."""
    kinds = sorted(set(faulty["expected"]) | set(faulty["observed"]))
    grid = np.zeros((len(kinds), len(kinds)))
    for _, row in faulty.iterrows():
        grid[kinds.index(row["expected"]), kinds.index(row["observed"])] += 1
    ax.imshow(grid, cmap="Greens")
    for i in range(len(kinds)):
        for j in range(len(kinds)):
            if grid[i, j]:
                ax.text(j, i, int(grid[i, j]), ha="center", va="center")
    ax.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right")
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_xlabel("observed")
    ax.set_ylabel("expected")
    ax.grid(False)
