"""Chapter 8's figures: example faces and traces, confusion matrices, robustness curves, and the
robustness bias of every attribute."""
from __future__ import annotations

import numpy as np

from ..data.faces import ATTRIBUTES, PROTECTED
from .metrics import confusion_by_group


def example_faces(tests: dict, per_kind: int = 4, attribute: str = "skin"):
    """Per dataset, a row of genuine and a row of manipulated faces (titled with ``attribute``)."""
    import matplotlib.pyplot as plt

    rows = [(d, label) for d in tests for label in (0, 1)]
    fig, axes = plt.subplots(len(rows), per_kind, figsize=(1.6 * per_kind, 1.7 * len(rows)), squeeze=False)
    for ax_row, (d, label) in zip(axes, rows):
        faces = tests[d]
        for ax, i in zip(ax_row, np.flatnonzero(faces.y == label)[:per_kind]):
            ax.imshow(faces.x[i].transpose(1, 2, 0))
            ax.axis("off")
            value = ATTRIBUTES[attribute][faces.attributes[attribute][i]]
            ax.set_title(f"{d}: {'fake' if label else 'genuine'}\n{value}", fontsize=7)
    fig.tight_layout()
    return fig


def traces(make, datasets, size: int):
    """What each generator family adds: the same face, genuine, manipulated, and the difference
    (magnified) - ``make(dataset)`` returns a genuine and a manipulated rendering of one face."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(datasets), 3, figsize=(5.4, 1.9 * len(datasets)), squeeze=False)
    for ax_row, d in zip(axes, datasets):
        genuine, fake = make(d)
        diff = fake - genuine
        scale = max(np.abs(diff).max(), 1e-6)
        for ax, img, title in zip(ax_row, (genuine, fake, 0.5 + 0.5 * diff / scale),
                                  ("genuine", "manipulated", f"difference (x{0.5 / scale:.0f})")):
            ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))
            ax.axis("off")
            ax.set_title(f"{d}: {title}", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_per_group(y: np.ndarray, g: np.ndarray, predictions: dict[str, list[np.ndarray]], title: str = ""):
    """Per condition and group: the confusion matrix summed over detectors (rows: truth), shaded
    by row share."""
    import matplotlib.pyplot as plt

    panels = [(c, group) for c in predictions for group in (0, 1)]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.9 * len(panels), 2.3))
    for ax, (condition, group) in zip(axes, panels):
        m = sum(confusion_by_group(y, p, g)[group] for p in predictions[condition])
        ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, v, ha="center", va="center", fontsize=8)
        ax.set_xticks([0, 1], ["genuine", "fake"], fontsize=7)
        ax.set_yticks([0, 1], ["genuine", "fake"], fontsize=7)
        ax.set_title(f"{condition}\n{ATTRIBUTES['skin'][group]} skin", fontsize=8)
        ax.grid(False)
    fig.suptitle(f"{title}: confusion matrices per skin tone, summed over seeds (rows: truth)", fontsize=9)
    fig.tight_layout()
    return fig


def robustness_curves(rb: dict, datasets, conditions, attack: str, taus: np.ndarray):
    """R_g(τ) of both skin tones under one attack: a row per dataset, a panel per condition."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(datasets), len(conditions), figsize=(3.3 * len(conditions), 2.6 * len(datasets)),
                             sharey=True, squeeze=False)
    for ax_row, d in zip(axes, datasets):
        for ax, c in zip(ax_row, conditions):
            s = rb[(d, c, attack)]
            ax.plot(taus, s["curve_privileged"], label="light skin")
            ax.plot(taus, s["curve_unprivileged"], ls="--", label="dark skin")
            ax.set_title(f"{d}, {c}\nmax RB {s['max_rb']:.2f}", fontsize=8)
            ax.set_xlabel(f"budget τ ({attack.split('(')[1].split(',')[0]})", fontsize=8)
        ax_row[0].set_ylabel("share not yet flipped", fontsize=8)
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(attack, fontsize=10)
    fig.tight_layout()
    return fig


def attribute_bars(table, margin: float, attack: str = "DeepFool"):
    """For every attribute, P(an image with value 1 is closer to the boundary than one with value
    0, same label) minus 0.5: a panel per dataset, a bar per condition; dotted lines at the claims'
    margin for "large" on either side."""
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 3), sharey=True, squeeze=False)
    for ax, d in zip(axes[0], datasets):
        part = table[table["dataset"] == d]
        conditions = list(dict.fromkeys(part["condition"]))
        attrs = list(dict.fromkeys(part["attribute"]))
        width = 0.8 / len(conditions)
        for k, c in enumerate(conditions):
            rows = part[part["condition"] == c].set_index("attribute").loc[attrs]
            ax.bar(np.arange(len(attrs)) + k * width, rows[f"P(1 closer) {attack}"] - 0.5, width, label=c)
        for level in (margin, -margin):
            ax.axhline(level, color="grey", ls=":", lw=1)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(np.arange(len(attrs)) + 0.4 - width / 2,
                      [f"{a}{'*' if a in PROTECTED else ''}\n({ATTRIBUTES[a][1]} closer: up)" for a in attrs],
                      fontsize=7)
        ax.set_title(f"{d} (* protected; dotted: 'large')", fontsize=9)
    axes[0, 0].set_ylabel(f"P(value 1 closer) - 0.5 ({attack})", fontsize=8)
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig
