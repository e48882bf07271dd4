"""Figure defaults shared by the chapters: readable in the HTML book and in a notebook."""
from __future__ import annotations

import matplotlib
import numpy as np


def use_book_style() -> None:
    """The book's figure style; in a notebook, figures are rendered at twice the pixel density
    (sharp on the page and on high-density screens, at the same displayed size)."""
    matplotlib.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": (7.0, 3.6),
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
        "grid.alpha": 0.3, "font.size": 10, "legend.frameon": False,
    })
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("retina")
    except (ImportError, AttributeError):   # outside IPython there is no inline backend to set
        pass


def image_grid(ax_row, images, titles=None, cmap="gray_r") -> None:
    """Show images on a row of axes, without ticks: grey (N, H, W) or channels first (N, C, H, W)."""
    images = np.asarray(images)
    for i, ax in enumerate(ax_row):
        img = images[i]
        if img.ndim == 3:   # channels first
            img = img.transpose(1, 2, 0).squeeze()
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)


def image_strip(images, titles=None, title: str | None = None, height: float = 1.5):
    """One row of images (see :func:`image_grid`) as a figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(len(images), height), squeeze=False)
    image_grid(axes[0], images, titles)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
