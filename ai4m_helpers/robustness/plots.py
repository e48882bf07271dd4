"""Chapter 1's figures."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .objectives import pinball
from .train import History


def plot_pinball(taus=(0.5, 0.8)):
    import torch

    u = torch.linspace(-2, 2, 201)
    fig, ax = plt.subplots(figsize=(4.5, 3))
    for tau in taus:
        ax.plot(u, pinball(u, tau), label=f"τ = {tau:g}")
    ax.set_xlabel("self-residual r = z(x)_y − z(x′)_y")
    ax.set_ylabel("ρ_τ(r)")
    ax.set_title("The pinball loss penalises the two signs unequally when τ ≠ 0.5")
    ax.legend()
    return fig


def plot_curves(hist: History, recipes: list[str], metric: str = "val_robust"):
    """Validation accuracy per epoch, mean over seeds with a ±1 std band, one line per recipe."""
    curves = hist.curves()
    names = np.array([r.name for r in hist.recipes])
    fig, ax = plt.subplots()
    for name in recipes:
        values = curves[metric][:, names == name]
        mean, std = values.mean(1), values.std(1)
        line, = ax.plot(curves["epoch"], mean, label=f"{name} ({values.shape[1]} seed(s))")
        if values.shape[1] > 1:
            ax.fill_between(curves["epoch"], mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel({"val_robust": "validation robust accuracy (PGD)",
                   "val_clean": "validation clean accuracy"}[metric])
    ax.legend()
    return fig


def plot_calibration(df, recipes: list[str]):
    """ECE of natural and adversarial predictions at the last checkpoint, per recipe."""
    last = df[df.checkpoint == "last"].groupby("recipe")[["ece_natural", "ece_adversarial"]].mean()
    last = last.reindex(recipes)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    x = np.arange(len(recipes))
    ax.bar(x - 0.2, last["ece_natural"], 0.4, label="natural inputs")
    ax.bar(x + 0.2, last["ece_adversarial"], 0.4, label="adversarial inputs (PGD)")
    ax.set_xticks(x, recipes, rotation=20, ha="right")
    ax.set_ylabel("expected calibration error")
    ax.legend()
    return fig
