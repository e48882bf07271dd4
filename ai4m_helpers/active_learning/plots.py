"""Chapter 7's figures, and the rule editor."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .loop import LoopResult
from .rules import KnowledgeBase, RuleError
from .strategies import Context, make_kal, reason
from .data import Task

SHOWN = ("random", "entropy", "bald_p0.5", "coreset", "random_rules_loss", "kal")


def plot_learning_curves(results: dict[str, LoopResult], starts, strategies=SHOWN,
                         rules_only: dict[str, float] | None = None):
    """Test macro-F1 against labels, mean over seeds; one column per task, one row per start; a
    dotted line where the rules alone put it (no learning)."""
    tasks = list(results)
    fig, axes = plt.subplots(len(starts), len(tasks), figsize=(3.6 * len(tasks), 2.8 * len(starts)),
                             squeeze=False)
    for col, name in enumerate(tasks):
        res = results[name]
        for row, start in enumerate(starts):
            ax = axes[row, col]
            for strategy in strategies:
                m = res.index(strategy, start)
                ax.plot(res.labelled_counts, res.f1[:, m].mean(1), label=strategy,
                        lw=2.2 if strategy == "kal" else 1.2)
            if rules_only and name in rules_only:
                ax.axhline(rules_only[name], color="k", ls=":", lw=1, label="rules only")
            ax.set_title(f"{name}, {start} start", fontsize=10)
            ax.set_xlabel("labelled samples")
            ax.set_ylabel("test macro-F1" if col == 0 else "")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_xor_picks(task: Task, res: LoopResult, seed: int, start: str = "biased",
                   strategies=("entropy", "kal")):
    """Where each strategy asked for labels on the XOR plane; KAL's picks coloured by rule."""
    fig, axes = plt.subplots(1, len(strategies), figsize=(4.2 * len(strategies), 4))
    for ax, strategy in zip(axes, strategies):
        m = next(i for i in res.index(strategy, start) if res.members[i].seed == seed)
        ax.scatter(*task.x_pool.T, c=task.y_pool[:, 0], cmap="coolwarm", s=2, alpha=0.15)
        picks = np.concatenate(res.picks[m])
        if res.pick_rules[m][0] is not None:
            rules = np.concatenate(res.pick_rules[m])
            for j in np.unique(rules):
                sel = picks[rules == j]
                ax.scatter(*task.x_pool[sel].T, s=25, edgecolor="k", label=reason(j, task.kb))
            ax.legend(fontsize=8, loc="upper right")
        else:
            ax.scatter(*task.x_pool[picks].T, s=25, c="k", label="picked")
        ax.axhline(0.5, color="grey", lw=0.8), ax.axvline(0.5, color="grey", lw=0.8)
        ax.set_title(f"{strategy}: {len(picks)} picks, {start} start", fontsize=10)
        ax.set_xlim(0, 1), ax.set_ylim(0, 1), ax.set_aspect("equal")
    return fig


def plot_digit_picks(task: Task, res: LoopResult, seed: int, start: str = "biased", count: int = 8):
    """KAL's first picks on digits, each with the rule it violated most."""
    m = next(i for i in res.index("kal", start) if res.members[i].seed == seed)
    picks = np.concatenate(res.picks[m])[:count]
    rules = np.concatenate(res.pick_rules[m])[:count]
    fig, axes = plt.subplots(1, count, figsize=(1.5 * count, 2.4))
    for ax, i, j in zip(axes, picks, rules):
        ax.imshow(task.x_pool[i].reshape(8, 8), cmap="gray_r")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"digit {task.region_pool[i]}\n{reason(j, task.kb)}", fontsize=8)
    return fig


def kal_picks(rules: list[str], task: Task, probs: torch.Tensor, labelled: np.ndarray, k: int = 5):
    """What KAL would ask about under these rules: (indices, most violated rule per pick)."""
    kb = KnowledgeBase(rules, task.kb.outputs, task.kb.inputs)
    x = torch.tensor(task.x_pool, device=probs.device)
    sel = make_kal()(Context(x, probs, labelled, kb, task.class_outputs), k)
    return sel.indices, sel.rules


def _picks_panel(ax, task: Task, idx, rules, k: int) -> None:
    ax.scatter(*task.x_pool.T, c=task.y_pool[:, 0], cmap="coolwarm", s=2, alpha=0.15)
    ax.scatter(*task.x_pool[idx].T, c=rules, cmap="tab10", s=30, edgecolor="k")
    ax.set_title(f"KAL's next {k} questions under these rules", fontsize=10)


def rule_editor(task: Task, probs: torch.Tensor, labelled: np.ndarray, k: int = 20):
    """An ipywidgets editor: change the XOR rules, see which points KAL would ask about. Where
    nobody can type (a run for the book), a static picture of the editor instead."""
    from ..chapter import batch_run

    if batch_run():
        return rule_editor_picture(task, probs, labelled, k)
    import ipywidgets as widgets
    from IPython.display import display

    boxes = [widgets.Text(value=r, layout=widgets.Layout(width="90%")) for r in task.kb.texts]
    out = widgets.Output()

    def redraw(*_):
        out.clear_output(wait=True)
        with out:
            try:
                idx, rules = kal_picks([b.value for b in boxes], task, probs, labelled, k)
            except RuleError as err:
                print(f"rule error: {err}")
                return
            fig, ax = plt.subplots(figsize=(4, 4))
            _picks_panel(ax, task, idx, rules, k)
            plt.show()

    for b in boxes:
        b.observe(redraw, names="value")
    redraw()
    display(widgets.VBox([widgets.HTML("<b>Edit a rule</b> (not, and, or, ->, <->):"), *boxes, out]))


def rule_editor_picture(task: Task, probs: torch.Tensor, labelled: np.ndarray, k: int = 20):
    """The editor as a figure: its rule boxes as given, and KAL's picks under them."""
    idx, rules = kal_picks(list(task.kb.texts), task, probs, labelled, k)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [1.3, 1]})
    left.axis("off")
    left.set_title("Edit a rule (not, and, or, ->, <->): a static picture", fontsize=10, loc="left")
    for j, text in enumerate(task.kb.texts):
        left.text(0.02, 0.9 - 0.12 * j, text, family="monospace", fontsize=9, va="top",
                  bbox={"boxstyle": "square,pad=0.4", "fc": "white", "ec": "0.6"})
    _picks_panel(right, task, idx, rules, k)
    fig.tight_layout()
    return fig
