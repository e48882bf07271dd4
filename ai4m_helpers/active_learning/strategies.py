"""Active-learning strategies behind one interface.

``select(ctx, k)`` returns the indices (into the pool) of the k unlabelled samples to label next.
The context carries what a strategy may look at: pool inputs, the model (whose outputs on the pool
a strategy asks for, inside its own timer), which samples are labelled already, the knowledge base,
and a generator. :func:`timed_select` times a strategy around everything it needs to choose. KAL also returns, for each
pick, the rule it violated most, so an expert can see why a sample was chosen.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import torch

from .rules import KnowledgeBase

EPS = 1e-6


@dataclasses.dataclass
class Context:
    """One member's view of the pool at one round."""

    x: torch.Tensor                  # pool inputs (N, d)
    probs: torch.Tensor | None       # sigmoid outputs on the pool (N, outputs); None: ask the model
    labelled: np.ndarray             # boolean mask (N,)
    kb: KnowledgeBase | None = None
    class_outputs: slice = dataclasses.field(default_factory=lambda: slice(None))  # the classes
    mc_probs: torch.Tensor | None = None  # (passes, N, outputs) with dropout, for BALD
    embedding: torch.Tensor | None = None  # (N, h) hidden features, for core-set
    rng: np.random.Generator | None = None
    # Where strategies get the model's outputs, BALD its MC passes and core-set its features when
    # the fields above are empty: computed inside the strategy, their cost is in its selection time.
    model: object = None
    member: int = 0
    mc_passes: int = 5
    seed: int = 0                    # the member's seed (which rules a partial-knowledge KAL knows)

    def get_probs(self) -> torch.Tensor:
        if self.probs is None:
            self.probs = self.model.member_predict(self.x, self.member)
        return self.probs

    def get_mc_probs(self) -> torch.Tensor:
        if self.mc_probs is None:
            self.mc_probs = self.model.member_mc_predict(self.x, self.member, self.mc_passes)
        return self.mc_probs

    def get_embedding(self) -> torch.Tensor:
        if self.embedding is None:
            self.embedding = self.model.member_hidden(self.x, self.member)
        return self.embedding


@dataclasses.dataclass
class Selection:
    indices: np.ndarray
    rules: np.ndarray | None = None  # KAL: per pick, its largest column (see kal_scores, reason)


def timed_select(strategy: Callable[["Context", int], "Selection"], ctx: Context,
                 k: int) -> tuple["Selection", float]:
    """Run a strategy and time everything it needs to choose: the model's pass over the pool, any
    extra passes (MC dropout, features), the rules' violations and the selection itself. The same
    wrapper times every strategy."""
    import time

    start = time.perf_counter()
    selection = strategy(ctx, k)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return selection, time.perf_counter() - start


def _top_unlabelled(score: torch.Tensor, labelled: np.ndarray, k: int) -> np.ndarray:
    score = score.clone().float()
    score[torch.as_tensor(labelled, device=score.device)] = -math.inf
    return torch.topk(score, k).indices.cpu().numpy()


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(EPS, 1 - EPS)
    return -(p * p.log() + (1 - p) * (1 - p).log())


# -- the baselines ------------------------------------------------------------------------------
def random_strategy(ctx: Context, k: int) -> Selection:
    candidates = np.flatnonzero(~ctx.labelled)
    return Selection(ctx.rng.choice(candidates, size=k, replace=False))


def entropy(ctx: Context, k: int) -> Selection:
    """Highest summed binary entropy of the sigmoid outputs."""
    return Selection(_top_unlabelled(binary_entropy(ctx.get_probs()).sum(-1), ctx.labelled, k))


def least_confidence(ctx: Context, k: int) -> Selection:
    """Highest summed uncertainty 1 - 2|p - 0.5| (KAL's 'uncertainty' baseline)."""
    return Selection(_top_unlabelled((1 - 2 * (ctx.get_probs() - 0.5).abs()).sum(-1), ctx.labelled, k))


def margin(ctx: Context, k: int) -> Selection:
    """Smallest gap between the two most likely classes (p against 1 - p for a single output)."""
    p = ctx.get_probs()[:, ctx.class_outputs]
    if p.shape[-1] == 1:
        gap = (2 * p[:, 0] - 1).abs()
    else:
        top2 = torch.topk(p, 2, dim=-1).values
        gap = top2[:, 0] - top2[:, 1]
    return Selection(_top_unlabelled(-gap, ctx.labelled, k))


def bald(ctx: Context, k: int) -> Selection:
    """Mutual information between outputs and weights, from MC-dropout passes (Houlsby et al. 2011)."""
    mc = ctx.get_mc_probs()
    info = binary_entropy(mc.mean(0)) - binary_entropy(mc).mean(0)
    return Selection(_top_unlabelled(info.sum(-1), ctx.labelled, k))


def coreset(ctx: Context, k: int) -> Selection:
    """Greedy k-center on the hidden features (Sener & Savarese 2018): the farthest point first."""
    emb = ctx.get_embedding().float()
    labelled = torch.as_tensor(ctx.labelled, device=emb.device)
    dist = torch.cdist(emb, emb[labelled]).min(1).values if labelled.any() else \
        torch.full((len(emb),), math.inf, device=emb.device)
    picks = []
    for _ in range(k):
        dist[labelled] = -1
        i = int(torch.argmax(dist))
        picks.append(i)
        labelled = labelled.clone()
        labelled[i] = True
        dist = torch.minimum(dist, torch.cdist(emb, emb[i:i + 1]).squeeze(1))
    return Selection(np.array(picks))


# -- KAL ----------------------------------------------------------------------------------------
def known_rules(n_rules: int, share: float, seed: int) -> np.ndarray:
    """The rules a partial-knowledge KAL is given: a random ``share`` of them (at least one),
    drawn once per seed."""
    keep = max(1, round(share * n_rules))
    return np.sort(np.random.default_rng(seed).choice(n_rules, size=keep, replace=False))


def kal_scores(ctx: Context, uncertainty: float = 0.0,
               rules: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """c(x) = sum of the (known) rules' violations (+ mu * sum f(1 - f)); the columns summed; and
    what each column is: a rule's number, or n_rules + i for the uncertainty of output i. As in
    the reference code, the uncertainty terms are columns of their own, so that the diversity cap
    and the reason given for a pick can be "uncertain" as well as a rule."""
    probs = ctx.get_probs()
    viol = ctx.kb.violations(ctx.x, probs)
    ids = np.arange(len(ctx.kb))
    if rules is not None:
        viol, ids = viol[:, torch.as_tensor(rules, device=viol.device)], rules
    if uncertainty:
        viol = torch.cat([viol, uncertainty * probs * (1 - probs)], -1)
        ids = np.concatenate([ids, len(ctx.kb) + np.arange(probs.shape[-1])])
    return viol.sum(-1), viol, ids


def reason(rule_id: int, kb) -> str:
    """What a KAL pick's column means: a rule (numbered from 1) or an output's uncertainty."""
    if rule_id < len(kb):
        return f"rule {rule_id + 1}"
    return f"uncertain {kb.outputs[rule_id - len(kb)]}"


def diverse_top(score: torch.Tensor, most_violated: torch.Tensor, labelled: np.ndarray, k: int) -> np.ndarray:
    """Walk candidates by decreasing score, at most ceil(k/2) per most-violated rule; fill up after."""
    order = torch.argsort(score, descending=True).cpu().numpy()
    order = order[~labelled[order]]
    rule_of = most_violated.cpu().numpy()
    cap = math.ceil(k / 2)
    taken, per_rule = [], {}
    for i in order:
        if per_rule.get(rule_of[i], 0) < cap:
            taken.append(i)
            per_rule[rule_of[i]] = per_rule.get(rule_of[i], 0) + 1
            if len(taken) == k:
                return np.array(taken)
    rest = [i for i in order if i not in set(taken)]
    return np.array(taken + rest[:k - len(taken)])


def make_kal(diversity: bool = True, uncertainty: float = 0.0,
             rule_share: float = 1.0) -> Callable[[Context, int], Selection]:
    """KAL- (plain), KAL_D (diversity), the paper's KAL (diversity + uncertainty), and KAL with
    only a share of the rules (the paper's partial-knowledge ablation)."""

    def kal(ctx: Context, k: int) -> Selection:
        rules = known_rules(len(ctx.kb), rule_share, ctx.seed) if rule_share < 1 else None
        score, viol, ids = kal_scores(ctx, uncertainty, rules)
        most_violated = ids[viol.argmax(-1).cpu().numpy()]     # the columns' own numbers
        if diversity:
            picks = diverse_top(score, torch.as_tensor(most_violated), ctx.labelled, k)
        else:
            picks = _top_unlabelled(score, ctx.labelled, k)
        return Selection(picks, most_violated[picks])

    return kal


STRATEGIES: dict[str, Callable[[Context, int], Selection]] = {
    "random": random_strategy,
    "entropy": entropy,
    "margin": margin,
    "least_confidence": least_confidence,
    "bald": bald,
    "bald_p0.5": bald,              # BALD with a dropout rate that makes MC passes differ (below)
    "coreset": coreset,
    "random_rules_loss": random_strategy,   # random picks, the rules as a training loss (below)
    "kal_plain": make_kal(diversity=False),
    "kal_diversity": make_kal(diversity=True),
    "kal": make_kal(diversity=True, uncertainty=1.0),
}
UNCERTAINTY = ("entropy", "margin", "least_confidence", "bald", "bald_p0.5")
# What a member's model is, beyond its strategy: BALD as in the paper's code trains with dropout
# 0.01, so its MC passes barely differ; "bald_p0.5" trains and samples with 0.5.
DROPOUT = {"bald_p0.5": 0.5}
RULES_AS_LOSS = ("random_rules_loss",)
# The partial-knowledge ablation: the paper's KAL knowing a random 25, 50 or 75 % of the rules.
PARTIAL = {f"kal_{int(100 * share)}%": share for share in (0.25, 0.5, 0.75)}
