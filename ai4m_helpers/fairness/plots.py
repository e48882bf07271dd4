"""Chapter 8's figures: example faces, confusion matrices per group, robustness curves."""
from __future__ import annotations

import numpy as np

from .metrics import confusion_by_group


def example_faces(x: np.ndarray, y: np.ndarray, g: np.ndarray, per_kind: int = 3):
    """A row per group: genuine faces, then manipulated ones."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2 * per_kind, figsize=(9, 3.4))
    for row, group in enumerate((0, 1)):
        picks = [np.flatnonzero((g == group) & (y == label))[:per_kind] for label in (0, 1)]
        for ax, i in zip(axes[row], np.concatenate(picks)):
            ax.imshow(x[i].transpose(1, 2, 0))
            ax.axis("off")
            ax.set_title(f"group {group}, {'fake' if y[i] else 'genuine'}", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_per_group(y: np.ndarray, g: np.ndarray, predictions: dict[str, list[np.ndarray]]):
    """Per condition and group: the confusion matrix summed over detectors (rows: truth), shaded
    by row share."""
    import matplotlib.pyplot as plt

    panels = [(c, group) for c in predictions for group in (0, 1)]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.5 * len(panels), 2.6))
    for ax, (condition, group) in zip(axes, panels):
        m = sum(confusion_by_group(y, p, g)[group] for p in predictions[condition])
        ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, v, ha="center", va="center", fontsize=9)
        ax.set_xticks([0, 1], ["genuine", "fake"])
        ax.set_yticks([0, 1], ["genuine", "fake"])
        ax.set_title(f"{condition}, group {group}", fontsize=9)
        ax.grid(False)
    fig.suptitle("Confusion matrices per group, summed over seeds (rows: truth, columns: verdict)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def robustness_curves(rb: dict, conditions, attacks, taus: np.ndarray):
    """R_g(τ) per condition (a panel each), per attack, group 0 solid and group 1 dashed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(conditions), figsize=(10, 3.4), sharey=True)
    for ax, condition in zip(np.atleast_1d(axes), conditions):
        for name in attacks:
            s = rb[(condition, name)]
            line, = ax.plot(taus, s["curve_privileged"], label=f"{name}: group 0")
            ax.plot(taus, s["curve_unprivileged"], ls="--", color=line.get_color(), label=f"{name}: group 1")
        ax.set_title(f"detector trained on {condition} data", fontsize=10)
        ax.set_xlabel("perturbation budget τ (L2)")
    first = np.atleast_1d(axes)
    first[0].set_ylabel("R_g(τ): share not yet flipped")
    first[-1].legend(fontsize=7)
    fig.tight_layout()
    return fig
