"""Figure defaults shared by the chapters: readable in the HTML book and in a notebook."""
from __future__ import annotations

import matplotlib

def use_book_style() -> None:
    matplotlib.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": (7.0, 3.6),
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
        "grid.alpha": 0.3, "font.size": 10, "legend.frameon": False,
    })


def image_grid(ax_row, images, titles=None, cmap="gray_r") -> None:
    """Show images (N, H, W) on a row of axes, without ticks."""
    for i, ax in enumerate(ax_row):
        ax.imshow(images[i], cmap=cmap, vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.grid(False)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
