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


def plot_lambda_sweep(points, sweeps: dict, matched: str, robust_label: str):
    """Last-checkpoint robust against clean accuracy on the test split along each λ sweep, mean
    over seeds with ±1 std bars; the matched ALP control is ringed. ``points`` has one row per
    recipe and seed with columns clean and robust."""
    last = points.groupby("recipe")[["clean", "robust"]].agg(["mean", "std"]).rename(
        columns={"robust": "pgd"})
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in sweeps.items():
        names = [name for _, name in points]
        rows = last.loc[names]
        ax.errorbar(rows[("clean", "mean")], rows[("pgd", "mean")], xerr=rows[("clean", "std")].fillna(0),
                    yerr=rows[("pgd", "std")].fillna(0), marker="o", capsize=2, label=label)
        for (lam, _), x, y in zip(points, rows[("clean", "mean")], rows[("pgd", "mean")]):
            ax.annotate(f"λ={lam:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.scatter(last.loc[matched, ("clean", "mean")], last.loc[matched, ("pgd", "mean")], s=200,
               facecolors="none", edgecolors="k", label="ALP matched to SRC on validation")
    ax.set_xlabel("clean accuracy, last checkpoint (test)")
    ax.set_ylabel(f"robust accuracy ({robust_label}),\nlast checkpoint (test)", fontsize=9)
    ax.set_title("Each regulariser along its λ grid")
    ax.legend(fontsize=8)
    return fig
