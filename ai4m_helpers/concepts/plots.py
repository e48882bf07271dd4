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


def granularity(counts):
    """Concepts per direction against the cut, and their histogram at each model's chosen cut."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    per = counts.groupby(["dataset", "start", "threshold"])["concepts"].mean()
    for (dataset, start), line in per.groupby(level=[0, 1], sort=False):
        axes[0].plot(line.index.get_level_values("threshold"), line.to_numpy(), marker="o",
                     label=f"{dataset}, {start}")
    axes[0].set_ylabel("concepts per direction")
    axes[0].set_xlabel("cut (fraction of the model scale)")
    axes[0].legend(fontsize=8)
    chosen = counts[counts.chosen]
    bins = np.arange(0, chosen.concepts.max() + 2) - 0.5
    for (dataset, start), group in chosen.groupby(["dataset", "start"], sort=False):
        axes[1].hist(group.concepts, bins=bins, alpha=0.5, label=f"{dataset}, {start}")
    axes[1].set_xlabel("concepts per direction at the chosen cut")
    axes[1].legend(fontsize=8)
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


def ranking_norms(run, n: int):
    """Why dot ranking fails on a small model: activation norms of all evaluation images against
    those of the top images of neurons and of concept vectors, under each ranking."""
    import matplotlib.pyplot as plt

    from .experiment import top_sets

    norms = np.linalg.norm(run.eval_acts, axis=1)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    bins = np.linspace(0, norms.max(), 30)
    ax.hist(norms, bins=bins, density=True, alpha=0.4, color="grey", label="all evaluation images")
    for kind, ranking in (("neuron", "dot"), ("concept vector", "dot"), ("concept vector", "cosine")):
        tops = np.concatenate(top_sets(run, n, kind, ranking) or [np.zeros(0, int)])
        ax.hist(norms[tops], bins=bins, density=True, histtype="step", lw=2,
                label=f"top {n} of each {kind}, {ranking} ranking")
    ax.set_xlabel("activation norm ‖a‖ of an image")
    ax.set_ylabel("density")
    ax.set_title(f"{run.dataset}, seed {run.seed}: activation norms of the top images", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def cut_selection(cuts):
    """Per dataset: mean silhouette and share of neurons split against the cut (dot ranking),
    averaged over seeds; the chosen cuts marked."""
    import matplotlib.pyplot as plt

    dot = cuts[cuts.ranking == "dot"]
    datasets = list(dict.fromkeys(dot.dataset))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 3.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        rows = dot[dot.dataset == dataset]
        mean = rows.groupby("threshold")[["silhouette", "share split"]].mean()
        ax.plot(mean.index, mean["share split"], marker="o", label="share of neurons split")
        ax.plot(mean.index, mean["silhouette"], marker="s", label="mean silhouette (probe)")
        for cut in sorted(set(rows[rows.chosen].threshold)):
            ax.axvline(cut, color="k", ls="--", lw=1)
        ax.set_xlabel("cut (fraction of the model scale); dashed: chosen")
        ax.set_title(dataset)
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
