"""Chapter 10's figures."""
from __future__ import annotations

import numpy as np

COLOURS = {"attention": "tab:blue", "LIME": "tab:orange", "summary score": "tab:green",
           "longest fragment": "tab:brown", "random": "tab:grey"}


def film_strip(axes, frames: np.ndarray, bounds: np.ndarray, rare_shots=()) -> None:
    """The middle frame of each shot, titled with its shot number (rare shots marked)."""
    for ax, s in zip(axes, range(len(bounds) - 1)):
        ax.imshow(frames[(bounds[s] + bounds[s + 1]) // 2])
        ax.set_title(f"shot {s}" + (" (rare)" if s in rare_shots else ""), fontsize=7)
        ax.axis("off")
    for ax in axes[len(bounds) - 1:]:
        ax.axis("off")


def scores_and_summary(ax, scores: np.ndarray, bounds: np.ndarray, kts_bounds: np.ndarray, summary: np.ndarray,
                       rare_shots=()) -> None:
    """Frame scores, the true shots (grey lines), KTS's shots (ticks on top), the frames the 15 %
    summary keeps (shaded green) and the rare shot (shaded red)."""
    t = np.arange(len(scores))
    ax.plot(t, scores, color="black", lw=1)
    for b in bounds[1:-1]:
        ax.axvline(b - 0.5, color="grey", lw=0.5)
    for b in kts_bounds[1:-1]:
        ax.plot([b - 0.5], [1.0], marker="v", color="tab:purple", ms=4)
    ax.fill_between(t, 0, 1, where=summary > 0, color="tab:green", alpha=0.15, step="mid", label="15 % summary")
    for s in rare_shots:
        ax.axvspan(bounds[s] - 0.5, bounds[s + 1] - 0.5, color="tab:red", alpha=0.12, label="rare shot")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("frame (2 fps)")
    ax.set_ylabel("importance")
    ax.legend(fontsize=7, frameon=False, loc="lower right")


def fragment_bars(axes, scores: dict, rare_shots=()) -> None:
    """Each method's influence score per fragment (the rare shot's bar outlined)."""
    for ax, (method, s) in zip(axes, scores.items()):
        bars = ax.bar(np.arange(len(s)), s, color=COLOURS.get(method))
        for r in rare_shots:
            bars[r].set_edgecolor("tab:red")
            bars[r].set_linewidth(2)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("fragment")
        ax.axhline(0, color="black", lw=0.5)


def disc_curves(axes, table) -> None:
    """Disc+ (solid) and Disc− (dashed) against k, per masking mode, each method a colour."""
    for ax, mode in zip(axes, ("one by one", "batch")):
        part = table[table["mode"] == mode]
        for method, rows in part.groupby("method", sort=False):
            c = COLOURS.get(method)
            ax.plot(rows["k"], rows["Disc+"], "o-", color=c, label=f"{method} Disc+", ms=4)
            ax.plot(rows["k"], rows["Disc-"], "s--", color=c, label=f"{method} Disc−", ms=4)
        ax.set_title(f"masking {mode}", fontsize=9)
        ax.set_xlabel("k (fragments masked)")
        ax.set_xticks([1, 2, 3])
    axes[0].set_ylabel("Kendall τ (Fisher mean)")
    axes[-1].legend(fontsize=6, frameon=False, ncol=2)


def object_overlay(ax, frame: np.ndarray, ids: np.ndarray, positive: int, negative: int, title: str) -> None:
    """A keyframe with the top positive object tinted green and the top negative one red."""
    shown = frame.copy()
    for obj, colour in ((positive, (0.1, 0.9, 0.1)), (negative, (0.95, 0.1, 0.1))):
        mask = ids == obj
        shown[mask] = 0.45 * shown[mask] + 0.55 * np.array(colour)
    ax.imshow(shown)
    ax.set_title(title, fontsize=7)
    ax.axis("off")
