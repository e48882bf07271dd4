"""Figures of chapter 2: the zoo as a family tree, the confusion matrix, budget curves."""
from __future__ import annotations

import numpy as np


def family_tree(ax, zoo) -> None:
    """Bases in a row (coloured by family), their descendants below: labelled zoo (squares) and
    held-out test models (circles); an arrow marks a base continued from another."""
    families = sorted({b.family for b in zoo.bases})
    colours = {f: c for f, c in zip(families, ("C0", "C1", "C2", "C3", "C4", "C5"))}
    x = {b.name: i for i, b in enumerate(zoo.bases)}
    for b in zoo.bases:
        ax.scatter(x[b.name], 0, s=260, color=colours[b.family], zorder=3)
        ax.text(x[b.name], 0.28, b.name, ha="center", va="bottom", fontsize=8, rotation=30)
        if b.parent:
            ax.annotate("", xy=(x[b.name], 0.05), xytext=(x[b.parent], 0.05),
                        arrowprops=dict(arrowstyle="->", color="grey", connectionstyle="arc3,rad=-0.4"))
        kids = [f for f in zoo.finetunes if f.base == b.name]
        for k, f in enumerate(kids):
            y = -1 - k
            ax.plot([x[b.name], x[b.name]], [-0.1, y], color="lightgrey", zorder=1)
            ax.scatter(x[b.name], y, s=60, marker="s" if f.split == "zoo" else "o",
                       facecolor=colours[b.family] if f.split == "zoo" else "white",
                       edgecolor=colours[b.family], zorder=3)
            ax.text(x[b.name] + 0.12, y, f.task, fontsize=7, va="center")
    ax.scatter([], [], marker="s", color="grey", label="labelled zoo")
    ax.scatter([], [], marker="o", facecolor="white", edgecolor="grey", label="held-out test")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_xlim(-0.6, len(zoo.bases) - 0.2)
    ax.set_ylim(-1 - max(len([f for f in zoo.finetunes if f.base == b.name]) for b in zoo.bases), 1.4)
    ax.axis("off")


def confusion(ax, matrix: np.ndarray, names, title: str) -> None:
    ax.imshow(matrix, cmap="Blues")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center",
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("attributed base")
    ax.set_ylabel("true base")
    ax.set_title(title, fontsize=10)


def budget_curves(axes, curves, methods, chance: float) -> None:
    """One panel per method: accuracy against prompts per held-out model (log scale), random vs
    disagreement-ranked prompts, mean and spread over zoos."""
    for ax, method in zip(axes, methods):
        rows = curves[curves["method"] == method]
        for column, style in (("random prompts", "-"), ("ranked prompts", "--")):
            stats = rows.groupby("prompts")[column].agg(["mean", "std"]).fillna(0)
            ax.plot(stats.index, stats["mean"], style, marker="o", ms=3, label=column)
            ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.15)
        ax.axhline(chance, color="grey", lw=0.8, ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_title(method, fontsize=10)
        ax.set_xlabel("prompts per held-out model")
    axes[0].set_ylabel("attribution accuracy")
    axes[0].legend(fontsize=7, frameon=False)


def correct_by_steps(ax, rows, methods) -> None:
    """Each held-out model as a point: its fine-tuning steps (log), and whether each method got it
    right (jittered so the methods' points do not hide each other)."""
    for k, method in enumerate(methods):
        jitter = np.random.default_rng(k).uniform(-0.08, 0.08, len(rows))
        ax.scatter(rows["steps"], rows[method].astype(float) + 0.25 * (k - 1) / len(methods) + jitter,
                   s=14, alpha=0.7, label=method)
    ax.set_xscale("log")
    ax.set_yticks([0, 1], ["wrong", "correct"])
    ax.set_xlabel("fine-tuning steps of the held-out model")
    ax.legend(fontsize=7, frameon=False, loc="center right")


def drift_by_strength(ax, rows) -> None:
    """Each held-out model as a point: its fine-tuning strength (learning rate x steps, log) and
    its drift from its base (nats per character), filled when the K2 pair attributor got it
    right; the real pretrained base's descendants, if any, in their own colour."""
    from .experiment import MAIN_LEVEL

    for pretrained, colour, label in ((False, "tab:blue", "small bases"),
                                      (True, "tab:red", "real pretrained base")):
        part = rows[rows["pretrained base"] == pretrained]
        if part.empty:
            continue
        hit = part[MAIN_LEVEL].astype(bool)
        x = part["lr x steps"]
        ax.scatter(x[hit], part["drift"][hit], s=18, color=colour, label=f"{label}, attributed")
        ax.scatter(x[~hit], part["drift"][~hit], s=18, facecolors="none", edgecolors=colour,
                   label=f"{label}, missed")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("fine-tuning strength (learning rate x steps)")
    ax.set_ylabel("drift from its base\n(KL, nats per character)")
    ax.legend(fontsize=7, frameon=False)
