"""Chapter 4's figures: a neuron's dendrogram and cut, top images per direction, granularity,
and integrated-gradients maps."""
from __future__ import annotations

import numpy as np

from ..plotting import image_grid
from .pipeline import Split, top_images


def dendrogram_with_cut(ax, acts: np.ndarray, split: Split, unit: int) -> None:
    """Ward dendrogram of a neuron's top probe images, the cut drawn across it."""
    from scipy.cluster.hierarchy import dendrogram, linkage

    dendrogram(linkage(acts[split.top], method="ward"), ax=ax, no_labels=True, color_threshold=split.cut)
    ax.axhline(split.cut, color="k", ls="--", lw=1)
    ax.set_title(f"neuron {unit}: Ward dendrogram of its top {len(split.top)} probe images; "
                 f"the cut gives {split.k} clusters, {split.n_concepts} kept")


def top_images_by_direction(images: np.ndarray, labels, acts: np.ndarray, unit: int, split: Split,
                            per_row: int = 8):
    """Row 0: the neuron's top evaluation images; one row per concept vector below."""
    import matplotlib.pyplot as plt

    directions = [np.eye(acts.shape[1])[unit], *split.vectors]
    fig, axes = plt.subplots(len(directions), per_row, figsize=(9, 1.3 * len(directions)), squeeze=False)
    for row, (ax_row, v) in enumerate(zip(axes, directions)):
        order = top_images(acts, v, per_row)
        image_grid(ax_row, images[order], [labels[i] for i in order])
        ax_row[0].set_ylabel("neuron" if row == 0 else f"concept {row}", fontsize=9)
    fig.suptitle("Top evaluation images: the neuron (first row) and each of its concept vectors", fontsize=10)
    fig.tight_layout()
    return fig


def granularity(counts, per_direction, threshold: float):
    """Concepts per direction against the cut, and their histogram at the main cut."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    per_direction.plot(marker="o", ax=axes[0])
    axes[0].set_ylabel("concepts per direction")
    axes[0].set_xlabel("threshold (fraction of the model scale)")
    main = counts[np.isclose(counts.threshold, threshold)]
    bins = np.arange(0, main.concepts.max() + 2) - 0.5
    for start, group in main.groupby("start"):
        axes[1].hist(group.concepts, bins=bins, alpha=0.6, label=start)
    axes[1].set_xlabel(f"concepts per direction at threshold {threshold}")
    axes[1].legend()
    fig.tight_layout()
    return fig


def attribution_maps(images: np.ndarray, titles, attributions: np.ndarray, title: str):
    """Top images above, their integrated-gradients maps (summed over channels) below."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(images), figsize=(1.75 * len(images), 3.6), squeeze=False)
    image_grid(axes[0], images, titles)
    for ax, a in zip(axes[1], attributions):
        ax.imshow(a.sum(0), cmap="bwr", vmin=-np.abs(a).max(), vmax=np.abs(a).max())
        ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
    fig.suptitle(title, fontsize=10)
    return fig
