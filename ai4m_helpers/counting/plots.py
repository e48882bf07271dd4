"""Chapter 3's figures."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np

from ..plotting import image_grid

ARM_COLOURS = {"real": "tab:grey", "no_density": "tab:orange", "density": "tab:blue",
               "swap": "tab:green", "swap_any": "tab:red"}
SHORT = {"real": "real only", "no_density": "no density\n(img2img)", "density": "density,\nno swap",
         "swap": "density,\nsimilar swap", "swap_any": "density,\nany swap"}


def _wrap(s: str, width: int = 18) -> str:
    return "\n".join(textwrap.wrap(s, width))


def scenes(scenes, n: int = 6, title: str = ""):
    """Images with their count and caption, and their density maps below."""
    fig, axes = plt.subplots(2, n, figsize=(1.25 * n, 3.4))
    image_grid(axes[0], scenes.images[:n],
               [f"{c} — {_wrap(t)}" for c, t in zip(scenes.counts[:n], scenes.captions[:n])])
    for ax, d in zip(axes[1], scenes.density[:n]):
        ax.imshow(d, cmap="magma")
        ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
    for ax, boxes in zip(axes[0], scenes.boxes[:n]):
        for x0, y0, x1, y1 in boxes:
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                       ec="white", lw=0.8))
    axes[1, 0].set_ylabel("density")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def similarities(ax, sims: np.ndarray, threshold: float) -> None:
    """Pairwise caption similarities of the training captions, and the swap threshold."""
    upper = sims[np.triu_indices(len(sims), 1)]
    ax.hist(upper, bins=40, color="tab:grey")
    ax.axvline(threshold, color="tab:green", ls="--", label=f"threshold {threshold:g}")
    share = float(np.mean(upper > threshold))
    ax.set_xlabel("cosine similarity of two training captions (MiniLM)")
    ax.set_ylabel("caption pairs")
    ax.set_title(f"{share:.0%} of pairs may be swapped", fontsize=9)
    ax.legend()


def synthetic_grid(run, captions: list, n: int = 5):
    """Per source image: the real image, its density control, and one synthetic image per arm
    (its caption underneath; a swapped caption is marked)."""
    arms = list(run.synthetic)
    first = {arm: {} for arm in arms}
    for arm in arms:
        syn = run.synthetic[arm]
        for j, src in enumerate(syn.source):
            first[arm].setdefault(int(src), j)
    sources = list(first[arms[0]])[:n]
    fig, axes = plt.subplots(n, 2 + len(arms), figsize=(1.45 * (2 + len(arms)), 1.55 * n))
    real = run.sets["train"]
    for row, src in enumerate(sources):
        image_grid([axes[row, 0]], real.images[[src]], [f"real ({real.counts[src]})"])
        axes[row, 1].imshow(real.density[src], cmap="magma")
        axes[row, 1].set_xticks([]), axes[row, 1].set_yticks([]), axes[row, 1].grid(False)
        for col, arm in enumerate(arms, start=2):
            syn = run.synthetic[arm]
            j = first[arm][src]
            mark = "swapped: " if syn.caption[j] != syn.own[j] else ""
            image_grid([axes[row, col]], syn.images[[j]])
            axes[row, col].set_xlabel(_wrap(mark + captions[syn.caption[j]], 22), fontsize=6)
    axes[0, 1].set_title("density", fontsize=8)
    for col, arm in enumerate(arms, start=2):
        axes[0, col].set_title(SHORT[arm], fontsize=8)
    axes[0, 0].set_title(f"real ({real.counts[sources[0]]})", fontsize=8)
    fig.tight_layout()
    return fig


def fidelity(axes, fid, counters=("learned", "classical")) -> None:
    """Counted objects in synthetic images against the count they were conditioned on."""
    top = fid.truth.max() + 2
    for ax, counter in zip(axes, counters):
        for arm, part in fid.groupby("arm", sort=False):
            ax.scatter(part.truth, part[counter], s=8, alpha=0.6, color=ARM_COLOURS[arm],
                       label=SHORT[arm].replace("\n", " "))
        ax.plot([0, top], [0, top], color="black", lw=0.8)
        ax.set_xlabel("count of the source image (the label)")
        ax.set_ylabel(f"{counter} count of the synthetic image")
        ax.set_title(f"{counter} counter", fontsize=9)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def downstream(ax, table, metric: str = "MAE") -> None:
    """A metric on the unseen shapes per arm: one dot per seed, the mean as a bar."""
    arms = list(dict.fromkeys(table.arm))
    for i, arm in enumerate(arms):
        values = table[table.arm == arm][metric].to_numpy()
        ax.bar(i, values.mean(), color=ARM_COLOURS[arm], alpha=0.35)
        ax.scatter(np.full(len(values), i), values, color=ARM_COLOURS[arm], s=14, zorder=3)
    ax.set_xticks(range(len(arms)), [SHORT[a] for a in arms], fontsize=7)
    ax.set_ylabel(f"{metric} on unseen shapes (objects)")


def curves(axes, runs) -> None:
    """The ControlNet's diffusion loss and the counters' density loss, per seed."""
    for r in runs:
        loss = np.asarray(r.controlnet_losses)
        k = max(1, len(loss) // 20)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        steps = np.linspace(0, r.controlnet_made["steps"], len(loss))[k - 1:]
        axes[0].plot(steps, smooth, color="tab:blue", alpha=0.7)
        for col, arm in enumerate(ARM_COLOURS):
            c = r.counter_curves[:, col]
            k = max(1, len(c) // 20)
            axes[1].plot(np.convolve(c, np.ones(k) / k, mode="valid"), color=ARM_COLOURS[arm],
                         alpha=0.7, label=SHORT[arm].replace("\n", " ") if r is runs[0] else None)
    axes[0].set_title(f"ControlNet ({runs[0].controlnet_made['source']}): diffusion loss",
                      fontsize=9)
    axes[1].set_title("counters: density loss", fontsize=9)
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("step")
    axes[1].legend(fontsize=7)
