"""Chapter 2's experiment: build the zoos, query them, attribute the held-out fine-tunes.

Per zoo (one per seed): base models and the labelled zoo answer the *training* prompts (two
samples per base), the held-out fine-tunes answer the *query* prompts only, through a counting
service; training and query prompts are disjoint. The attributors of every knowledge level and
the perplexity heuristic then attribute each held-out model, with all query prompts and with
budgets of fewer prompts, chosen at random or ranked by base-only disagreement.
"""
from __future__ import annotations

import dataclasses
import random
import zlib
from typing import TYPE_CHECKING

import numpy as np

from .. import claims as C
from ..runtime import replicate_seeds
from . import api, attributors as att, data as corpora
from .zoo import PRETRAINED, Zoo, ZooSettings, build_zoos

if TYPE_CHECKING:
    import pandas as pd

MAIN_LEVEL = "K2 pair"     # the most informed attributor: its errors and per-base table are shown
BUDGETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


def zoo_settings(P: dict) -> list[ZooSettings]:
    keys = [f.name for f in dataclasses.fields(ZooSettings) if f.name != "seed"]
    return [ZooSettings(**{k: P[k] for k in keys}, seed=s) for s in replicate_seeds(P["seed"], P["zoo_seeds"])]


@dataclasses.dataclass
class ZooRun:
    zoo: Zoo
    bases: list[str]
    test_models: list[str]
    truth: np.ndarray                      # index of each held-out model's true base
    probs: dict[str, np.ndarray]           # level -> (n_test, n_bases, n_query_prompts)
    nll: np.ndarray                        # (n_test, n_bases, n_query_prompts) summed over characters
    chars: np.ndarray                      # characters each sum covers
    own_nll: np.ndarray                    # (n_test, n_query_prompts) per character: each held-out
                                           # model's answers under itself (for drift, not attribution)
    ranking: np.ndarray                    # query prompts, most base-disagreeing first
    queries_to_test_models: int
    samples: dict                          # a few responses for display

    def attribute(self, method: str, prompts=None) -> np.ndarray:
        if method == "perplexity":
            return att.perplexity_attribution(self.nll, self.chars, prompts)
        return att.vote(self.probs[method], prompts)

    def accuracy(self, method: str, prompts=None) -> float:
        return float((self.attribute(method, prompts) == self.truth).mean())


def build(P: dict, device, log=print) -> list[Zoo]:
    """Step 1: the zoos, one per replicate seed (read from the cache when built before)."""
    return build_zoos(zoo_settings(P), P["cache_dir"] or None, device, log)


@dataclasses.dataclass
class Answers:
    """Everything the auditor asked and heard for one zoo."""

    zoo: Zoo
    services: dict                         # model name -> LMService
    bases: list[str]
    train_prompts: list[str]
    query_prompts: list[str]
    base_train: tuple[dict, dict]          # two independent samples of each base's answers
    base_query: dict
    zoo_train: dict                        # labelled zoo's answers to the training prompts
    test_query: dict                       # held-out models' answers to the query prompts
    queries: int                           # queries to held-out models


def query(P: dict, zoo: Zoo, device) -> Answers:
    """Step 2: ask. The auditor's own side (bases, labelled zoo) answers as often as needed: each
    base answers the training prompts twice and the query prompts once, in one batched call. The
    held-out fine-tunes, the scarce side, answer each query prompt once, through counting services."""
    seed = zoo.settings.seed
    pool = corpora.prompt_pool(random.Random(seed + 55), P["train_prompts"] + P["query_prompts"])
    train_prompts, query_prompts = pool[:P["train_prompts"]], pool[P["train_prompts"]:]
    bases = [b.name for b in zoo.bases]
    names = bases + [f.name for f in zoo.finetunes]
    services = {n: api.LMService.open(zoo.model_dir(n), P["response_tokens"], service_seed(seed, n), device)
                for n in names}
    n = len(train_prompts)
    base_all = _responses(services, bases, train_prompts + train_prompts + query_prompts)
    test_models = [f.name for f in zoo.split("test")]
    test_query = _responses(services, test_models, query_prompts)
    return Answers(zoo, services, bases, train_prompts, query_prompts,
                   ({b: r[:n] for b, r in base_all.items()}, {b: r[n:2 * n] for b, r in base_all.items()}),
                   {b: r[2 * n:] for b, r in base_all.items()},
                   _responses(services, [f.name for f in zoo.split("zoo")], train_prompts), test_query,
                   sum(services[m].queries for m in test_models))


def service_seed(zoo_seed: int, name: str) -> int:
    """A model's sampling seed, from its zoo's seed and its own name only: adding a base to the
    zoo leaves every other model's answers as they were."""
    return (zoo_seed * 1_000_003 + zlib.crc32(name.encode())) % 2 ** 31


def attribute(answers: Answers, featurizer) -> dict[str, np.ndarray]:
    """Step 3: fit each knowledge level's one-vs-rest classifiers on the auditor's side and score
    the held-out models' answers: level -> (held-out models, bases, query prompts)."""
    a, zoo_models = answers, answers.zoo.split("zoo")
    featurizer.fit([t for r in (*a.base_train[0].values(), *a.base_train[1].values(), *a.zoo_train.values())
                    for t in r])
    F = featurizer.transform
    feats = {"base1": [F(a.base_train[0][b]) for b in a.bases], "base2": [F(a.base_train[1][b]) for b in a.bases],
             "zoo": [F(a.zoo_train[f.name]) for f in zoo_models],
             "zoo_base": [a.bases.index(f.base) for f in zoo_models]}
    q_base = [F(a.base_query[b]) for b in a.bases]
    q_test = [F(responses) for responses in a.test_query.values()]
    return {level: att.train_and_score(level, feats, q_base, q_test, a.zoo.settings.seed) for level in att.LEVELS}


@dataclasses.dataclass
class BaseScores:
    """Step 4's output: what the bases say about the answers."""

    nll: np.ndarray            # (held-out models, bases, query prompts): summed over characters
    chars: np.ndarray          # characters each sum covers
    ranking: np.ndarray        # query prompts, most base-disagreeing first
    own_nll: np.ndarray        # (held-out models, query prompts): each one's answers under itself, per character


def score_with_bases(answers: Answers) -> BaseScores:
    """Step 4: every held-out answer's NLL under every base (for the perplexity heuristic) and the
    query prompts ranked by base-only disagreement (most disagreeing first). For the analysis of
    drift only (an auditor would not have it), each held-out model's NLL of its own answers."""
    nll, chars = _perplexities(answers.services, answers.bases, list(answers.test_query.values()))
    cross = _per_char_nll(answers.services, answers.bases, answers.base_query)
    ranking = np.argsort(-att.disagreement(cross), kind="stable")
    own = []
    for name, responses in answers.test_query.items():
        service = answers.services[name]
        total, n = api.char_nll(service.model, service.tokenizer, responses)
        own.append(total / n)
    return BaseScores(nll, chars, ranking, np.stack(own))


def assemble(answers: Answers, probs, scores: BaseScores) -> ZooRun:
    """The zoo's results in one object the summaries below read."""
    a = answers
    tests = a.zoo.split("test")
    samples = {"prompts": a.query_prompts[:4], **{b: a.base_query[b][:4] for b in a.bases},
               **{name: r[:4] for name, r in a.test_query.items()}}
    return ZooRun(a.zoo, a.bases, [f.name for f in tests], np.array([a.bases.index(f.base) for f in tests]),
                  probs, scores.nll, scores.chars, scores.own_nll, scores.ranking, a.queries, samples)


def _responses(services: dict, names, prompts) -> dict[str, list[str]]:
    return {n: services[n].query(prompts) for n in names}


def _perplexities(services, bases, responses: list[list[str]]):
    """Summed NLL and character counts of every held-out response under every base."""
    flat = [r for rs in responses for r in rs]
    shape = (len(responses), len(bases), len(responses[0]))
    nll, chars = np.zeros(shape), np.zeros(shape)
    for b, name in enumerate(bases):
        s, n = api.char_nll(services[name].model, services[name].tokenizer, flat)
        nll[:, b], chars[:, b] = s.reshape(shape[0], shape[2]), n.reshape(shape[0], shape[2])
    return nll, chars


def _per_char_nll(services, bases, base_query: dict) -> np.ndarray:
    """NLL per character (comparable across tokenizers) of each base's responses under each base."""
    texts = [t for source in bases for t in base_query[source]]
    out = np.zeros((len(bases), len(bases), len(base_query[bases[0]])))
    for i, scorer in enumerate(bases):
        nll, chars = api.char_nll(services[scorer].model, services[scorer].tokenizer, texts)
        out[i] = (nll / chars).reshape(len(bases), -1)
    return out


# ---------------------------------------------------------------- summaries across zoos


def budgets(n_prompts: int) -> list[int]:
    return sorted({q for q in BUDGETS if q < n_prompts} | {n_prompts})


def random_orders(n_prompts: int, n_orders: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.permutation(n_prompts) for _ in range(n_orders)]


def budget_hits(run: ZooRun, method: str, orders: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per held-out model and budget (columns: ``budgets``): the share of random prompt draws that
    attribute it correctly, and whether the top-ranked prompts do."""
    n = run.probs[att.LEVELS[0]].shape[-1]
    qs = budgets(n)
    rand = np.stack([np.mean([run.attribute(method, o[:q]) == run.truth for o in orders], axis=0)
                     for q in qs], axis=1)
    ranked = np.stack([run.attribute(method, run.ranking[:q]) == run.truth for q in qs], axis=1)
    return rand, ranked.astype(float)


def budget_curves(runs: list[ZooRun], methods, n_orders: int, seed: int) -> list[dict]:
    """Accuracy against the number of query prompts per held-out model: random prompts (mean over
    ``n_orders`` draws) and prompts ranked by base-only disagreement."""
    rows = []
    n = runs[0].probs[att.LEVELS[0]].shape[-1]
    orders = random_orders(n, n_orders, seed)
    for method in methods:
        for run in runs:
            rand, ranked = budget_hits(run, method, orders)
            for j, q in enumerate(budgets(n)):
                rows.append({"method": method, "prompts": q, "zoo seed": run.zoo.settings.seed,
                             "random prompts": rand[:, j].mean(), "ranked prompts": ranked[:, j].mean(),
                             "queries to held-out models": q * len(run.test_models)})
    return rows


def sibling_errors(runs: list[ZooRun], method: str, small_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per wrong attribution: whether it landed on a sibling of the true base, and the chance of
    that if wrong attributions fell uniformly on the other bases."""
    on_sibling, expected = [], []
    for run in runs:
        for t, p in zip(run.truth, run.attribute(method)):
            if small_only and run.bases[t] == PRETRAINED:
                continue
            if p != t:
                sib = run.zoo.siblings(run.bases[t])
                on_sibling.append(run.bases[p] in sib)
                expected.append(len(sib) / (len(run.bases) - 1))
    return np.array(on_sibling, bool), np.array(expected, float)


def sibling_error_share(runs: list[ZooRun], method: str) -> dict:
    """Share of wrong attributions that land on a sibling of the true base, against the share
    expected if wrong attributions fell uniformly on the other bases."""
    on_sibling, expected = sibling_errors(runs, method)
    errors = len(on_sibling)
    return {"errors": errors, "on siblings": int(on_sibling.sum()),
            "sibling share": float(on_sibling.mean()) if errors else float("nan"),
            "uniform share": float(expected.mean()) if errors else float("nan")}


METHODS = (*att.LEVELS, "perplexity")


def accuracy_table(runs: list[ZooRun]) -> pd.DataFrame:
    """Accuracy with all query prompts, per method: mean and std over zoos, correct/total."""
    import pandas as pd

    rows = []
    for method in METHODS:
        acc = np.array([run.accuracy(method) for run in runs])
        correct = sum(int((run.attribute(method) == run.truth).sum()) for run in runs)
        total = sum(len(run.truth) for run in runs)
        rows.append({"method": method, "accuracy": acc.mean(),
                     "std over zoos": acc.std(ddof=1) if len(acc) > 1 else float("nan"),
                     "correct / held-out models": f"{correct} / {total}"})
    return pd.DataFrame(rows).set_index("method")


def correct(runs: list[ZooRun], method: str) -> np.ndarray:
    """Per held-out model, pooled over zoos: attributed to its true base with every query prompt."""
    return np.concatenate([run.attribute(method) == run.truth for run in runs]).astype(float)


# -- the claims; margins fixed before any result ----------------------------------------------------
UNIT = "held-out model"
MOST = 0.5          # "most" held-out models
FAR_ABOVE = 2.0     # "far above chance": at least twice chance
KNOWLEDGE = {"labelled fine-tunes (K2 over K1, K2 pair over K1 pair)": (("K2", "K1"), ("K2 pair", "K1 pair")),
             "paired inputs (K1 pair over K1, K2 pair over K2)": (("K1 pair", "K1"), ("K2 pair", "K2"))}


def attribution_claim(hits: np.ndarray, chance: float) -> C.Claim:
    """Most held-out models attributed, far above chance: the share correct (exact binomial
    interval over held-out models) above max(0.5, 2 x chance)."""
    margin = max(MOST, FAR_ABOVE * chance)
    est = C.proportion(int(hits.sum()), len(hits), UNIT)
    return C.decide("black-box responses attribute most held-out fine-tunes to their base, far above chance",
                    est, direction="greater", margin=margin,
                    evidence={"correct": int(hits.sum()), "held-out models": len(hits), "chance": chance})


def knowledge_claim(hits: dict[str, np.ndarray]) -> C.Claim:
    """More knowledge helps: per kind of knowledge, the per-model gain in correctness averaged over
    the two comparisons it enters; held when both kinds help."""
    parts = {}
    for kind, pairs in KNOWLEDGE.items():
        gain = np.mean([hits[better] - hits[worse] for better, worse in pairs], axis=0)
        parts[kind] = C.decide(kind, C.mean_ci(gain, UNIT), direction="greater", margin=0.0)
    return C.combine("more knowledge (labelled fine-tunes, paired inputs) raises attribution accuracy",
                     parts, rule="all")


MID_SHARE = 0.25    # the mid budget, fixed in advance: the largest budget at most a quarter of the prompts


def mid_budget(budget_list: list[int]) -> int:
    """Index of the mid budget in ``budget_list``."""
    return max(i for i, q in enumerate(budget_list) if q <= max(budget_list[0], MID_SHARE * budget_list[-1]))


def prompt_claims(random_hits: np.ndarray, ranked_hits: np.ndarray, budget_list: list[int]) -> list[C.Claim]:
    """From per-model hits by budget: all prompts against the mid budget of random prompts, and
    ranked against random prompts averaged over the budgets below the maximum. (One prompt
    against all of them would compare a single noisy vote with a settled majority and say little
    about whether *more* prompts keep helping; a vote of miscalibrated classifiers can also settle
    on a wrong base, so the effect may come out negative.)"""
    mid = mid_budget(budget_list)
    more = C.decide(f"more prompts raise attribution accuracy (all {budget_list[-1]} against {budget_list[mid]})",
                    C.paired(random_hits[:, mid], random_hits[:, -1], UNIT), direction="greater", margin=0.0,
                    evidence={f"accuracy with {budget_list[mid]} random prompts": random_hits[:, mid].mean(),
                              f"accuracy with all {budget_list[-1]} prompts": random_hits[:, -1].mean(),
                              "accuracy with 1 random prompt": random_hits[:, 0].mean()})
    gain = (ranked_hits[:, :-1] - random_hits[:, :-1]).mean(axis=1)
    ranked = C.decide("prompts ranked by base-only disagreement beat random prompts",
                      C.mean_ci(gain, UNIT), direction="greater", margin=0.0,
                      evidence={"budgets": budget_list[:-1]})
    return [more, ranked]


def sibling_claim(on_sibling: np.ndarray, expected: np.ndarray) -> C.Claim:
    """Errors concentrate on siblings: per error, on-a-sibling minus its uniform chance."""
    return C.decide("attribution errors concentrate on sibling bases",
                    C.mean_ci(on_sibling.astype(float) - expected, "error"), direction="greater", margin=0.0,
                    evidence={"errors": len(on_sibling), "on siblings": int(on_sibling.sum()),
                              "uniform share": float(expected.mean()) if len(expected) else float("nan")},
                    unmeasurable="no errors to locate" if len(on_sibling) == 0 else None)


def of_small_bases(runs: list[ZooRun]) -> np.ndarray:
    """Per held-out model, pooled over zoos: descends from one of the small bases (not from the
    real pretrained base, whose descendants are told apart for reasons of their own)."""
    return np.concatenate([np.array([run.bases[t] != PRETRAINED for t in run.truth]) for run in runs])


def decide_claims(runs: list[ZooRun], n_orders: int, seed: int) -> list[C.Claim]:
    """The claims, decided on the small bases' held-out models (all of them when the zoo has no
    real base); chance stays one over every candidate base."""
    chance = 1 / len(runs[0].bases)
    keep = of_small_bases(runs)
    hits = {m: correct(runs, m)[keep] for m in att.LEVELS}
    n_prompts = runs[0].probs[att.LEVELS[0]].shape[-1]
    orders = random_orders(n_prompts, n_orders, seed)
    per_run = [budget_hits(run, MAIN_LEVEL, orders) for run in runs]
    random_hits = np.concatenate([r for r, _ in per_run])[keep]
    ranked_hits = np.concatenate([k for _, k in per_run])[keep]
    return [attribution_claim(hits[MAIN_LEVEL], chance), knowledge_claim(hits),
            *prompt_claims(random_hits, ranked_hits, budgets(n_prompts)),
            sibling_claim(*sibling_errors(runs, MAIN_LEVEL, small_only=True))]


def confusion_matrix(runs: list[ZooRun], method: str) -> np.ndarray:
    n = len(runs[0].bases)
    matrix = np.zeros((n, n), int)
    for run in runs:
        for t, p in zip(run.truth, run.attribute(method)):
            matrix[t, p] += 1
    return matrix


def per_base_table(runs: list[ZooRun], method: str) -> pd.DataFrame:
    """Per-base response AUC, precision, recall of h_b and model-level precision/recall, mean
    over zoos."""
    import pandas as pd

    frames = [pd.DataFrame(att.per_base_metrics(run.probs[method], run.truth, run.attribute(method), run.bases))
              for run in runs]
    return pd.concat(frames).groupby("base", sort=False).mean()


FT_METHODS = ("K1", MAIN_LEVEL, "perplexity")   # shown against fine-tuning strength


def drift(run: ZooRun) -> np.ndarray:
    """Per held-out model q with base p: how far fine-tuning moved it, as a Monte Carlo estimate
    of KL(q || p) per character from q's own answers, mean over prompts of
    (-log p(r) + log q(r)) / characters(r). The answers are sampled with top-k 50, not from q
    itself, so this estimates the divergence of what the service actually says; it is 0 for a
    model its base explains as well as it explains itself, and it compares across bases because
    each term is the model's own likelihood against its base's on the same text and tokenizer."""
    idx = np.arange(len(run.truth))
    under_base = run.nll[idx, run.truth] / run.chars[idx, run.truth]
    return (under_base - run.own_nll).mean(axis=1)


def by_finetuning(runs: list[ZooRun], methods=FT_METHODS) -> pd.DataFrame:
    """One row per held-out model: its base (and whether that is the real pretrained model),
    fine-tuning steps, learning rate, drift, and whether each method attributed it correctly."""
    import pandas as pd

    rows = []
    for run in runs:
        specs = {f.name: f for f in run.zoo.finetunes}
        hits = {m: run.attribute(m) == run.truth for m in methods}
        moved = drift(run)
        for i, name in enumerate(run.test_models):
            f = specs[name]
            rows.append({"zoo seed": run.zoo.settings.seed, "model": name, "base": f.base,
                         "pretrained base": f.base == PRETRAINED, "steps": f.steps, "lr": f.lr,
                         "lr x steps": f.lr * f.steps, "drift": float(moved[i]),
                         **{m: bool(hits[m][i]) for m in methods}})
    return pd.DataFrame(rows)


def by_base_kind(ft: pd.DataFrame, methods=FT_METHODS) -> pd.DataFrame:
    """The held-out models of small bases against those of the real pretrained base (when the zoo
    has one): how many, their median steps, mean drift and the share each method attributed."""
    kind = ft["pretrained base"].map({True: "real pretrained base", False: "small bases"}).rename("base kind")
    out = ft.groupby(kind)[["steps", "lr x steps", "drift", *methods]].agg(
        {"steps": "median", "lr x steps": "median", "drift": "mean", **{m: "mean" for m in methods}})
    out.insert(0, "held-out models", kind.value_counts())
    return out.rename(columns={"steps": "median steps", "lr x steps": "median lr x steps",
                               "drift": "mean drift (KL, nats/char)"})
