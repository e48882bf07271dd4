"""The active-learning loop, for every (strategy, seed) member at once.

A member is one (strategy, seed, start) triple, where the start names how the first labels were
drawn (at random, or from one region only). Round r: train every member (warm start) on its
labelled samples; evaluate on the test split; let each member's strategy pick ``per_round`` new
pool samples, whose labels are then revealed. Members with the same seed and start share their
first labels, and members with the same seed share their initial weights, so strategies are
compared pairwise, seed by seed.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from .models import StackedMLP
from .train import RulePenalty, Trainer
from .strategies import Context, timed_select
from .data import Task


@dataclasses.dataclass
class LoopConfig:
    n_initial: int = 10
    per_round: int = 5
    rounds: int = 18
    hidden: int = 200
    lr: float = 1e-3
    epochs: int = 250             # per round; the network is never re-initialised
    dropout: float = 0.01
    mc_passes: int = 5
    rules_loss_weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class Member:
    strategy: str
    seed: int
    start: str = "random"


@dataclasses.dataclass
class LoopResult:
    members: list
    rounds: int
    labelled_counts: list            # labels at each evaluation
    f1: np.ndarray                   # (rounds + 1, members) macro-F1 on the test split
    violation_rate: np.ndarray       # (rounds + 1, members) share of test samples violating a rule
    regions_covered: np.ndarray      # (rounds + 1, members) distinct regions among the labels
    selection_s: np.ndarray          # (members,) time spent selecting, summed over rounds
    picks: list                      # per member: list of index arrays, one per round
    pick_rules: list                 # per member: list of rule-index arrays (KAL) or None

    def index(self, strategy: str, start: str) -> list[int]:
        """Members of one strategy and start, ordered by seed."""
        found = [(m.seed, i) for i, m in enumerate(self.members) if m.strategy == strategy and m.start == start]
        return [i for _, i in sorted(found)]

    def rounds_to_cover(self, n_regions: int) -> np.ndarray:
        """Per member, the first round at which every region has a label (rounds + 1 if never)."""
        full = self.regions_covered >= n_regions
        return np.where(full.any(0), full.argmax(0), self.rounds + 1)


def violation_rate(task: Task, x: torch.Tensor, probs: torch.Tensor, threshold: float = 0.5) -> np.ndarray:
    """Share of samples whose most violated rule has violation above ``threshold``, per member."""
    viol = task.kb.violations(x, probs)
    return (viol.max(-1).values > threshold).float().mean(-1).cpu().numpy()


def macro_f1(task: Task, y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Macro-F1 over the classes, as scikit-learn's 'macro' with zero_division=0 (several class
    outputs: each a binary label; one output: its two classes), for every member's outputs
    (M, N, outputs) at once."""
    cls = task.class_outputs
    truth = y_true[None, :, cls] > 0.5
    pred = probs[:, :, cls] > 0.5
    if truth.shape[-1] == 1:   # a binary task: both classes count
        truth, pred = np.concatenate([truth, ~truth], -1), np.concatenate([pred, ~pred], -1)
    tp = (pred & truth).sum(1)
    wrong = (pred != truth).sum(1)             # false positives + false negatives
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(2 * tp + wrong > 0, 2 * tp / (2 * tp + wrong), 0.0)
    return f1.mean(-1)


def run_loop(task: Task, strategies: dict, members: Sequence[Member],
             initial: dict[tuple[int, str], np.ndarray], cfg: LoopConfig, device="cpu",
             progress=None, dropout: dict[str, float] | None = None,
             rules_as_loss: Sequence[str] = ()) -> LoopResult:
    """``initial[(seed, start)]``: the first labels of that seed and start. ``dropout`` gives some
    strategies' models another dropout rate than ``cfg.dropout``; the members of the strategies in
    ``rules_as_loss`` train with the rules as a loss on the unlabelled pool (weight
    ``cfg.rules_loss_weight``)."""
    torch.manual_seed(min(m.seed for m in members))  # dropout masks in training and for BALD
    data = task.tensors(device)
    names = [m.strategy for m in members]
    seeds = [m.seed for m in members]
    rates = [(dropout or {}).get(name, cfg.dropout) for name in names]
    model = StackedMLP(seeds, data["x_pool"].shape[1], cfg.hidden, data["y_pool"].shape[1], rates, device)
    trainer = Trainer(model, cfg.lr)
    weights = torch.tensor([cfg.rules_loss_weight * (n in rules_as_loss) for n in names], device=device)
    penalty = RulePenalty(task.kb, data["x_pool"], weights) if weights.any() else None
    order = [list(initial[(m.seed, m.start)]) for m in members]   # labelled pool indices, in order
    rngs = [np.random.default_rng(10_000 + seed) for seed in seeds]
    n_pool = len(task.x_pool)
    y_test = task.y_test
    hist = {k: [] for k in ("count", "f1", "viol", "regions")}
    selection_s = np.zeros(len(members))
    picks = [[] for _ in members]
    pick_rules = [[] for _ in members]
    rounds = range(cfg.rounds + 1)
    for r in (progress(rounds) if progress else rounds):
        idx = torch.as_tensor(np.array(order), device=device)
        trainer.fit(data["x_pool"][idx], data["y_pool"][idx], cfg.epochs, penalty)
        test_probs = model.predict(data["x_test"])
        hist["count"].append(len(order[0]))
        hist["f1"].append(macro_f1(task, y_test, test_probs.cpu().numpy()))
        hist["viol"].append(violation_rate(task, data["x_test"], test_probs))
        hist["regions"].append(np.array([len(set(task.region_pool[o])) for o in order]))
        if r == cfg.rounds:    # the last round is evaluated, nothing more is picked
            continue
        for m, name in enumerate(names):
            labelled = np.zeros(n_pool, dtype=bool)
            labelled[order[m]] = True
            # No precomputed outputs: each strategy asks the model inside its own timer.
            ctx = Context(data["x_pool"], None, labelled, task.kb, task.class_outputs,
                          rng=rngs[m], model=model, member=m, mc_passes=cfg.mc_passes, seed=seeds[m])
            sel, seconds = timed_select(strategies[name], ctx, cfg.per_round)
            selection_s[m] += seconds
            order[m].extend(int(i) for i in sel.indices)
            picks[m].append(np.asarray(sel.indices))
            pick_rules[m].append(sel.rules)
    return LoopResult(list(members), cfg.rounds, hist["count"], np.stack(hist["f1"]), np.stack(hist["viol"]),
                      np.stack(hist["regions"]), selection_s, picks, pick_rules)
