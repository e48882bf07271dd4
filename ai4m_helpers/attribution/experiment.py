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
import time
from typing import TYPE_CHECKING

import numpy as np

from ..stats import mean_se, noise_note
from . import api, attributors as att, corpora
from .features import make_featurizer
from .zoo import Zoo, ZooSettings, build_zoos

if TYPE_CHECKING:
    import pandas as pd

MAIN_LEVEL = "K2 pair"     # the most informed attributor: its errors and per-base table are shown
BUDGETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


def zoo_settings(P: dict) -> list[ZooSettings]:
    keys = [f.name for f in dataclasses.fields(ZooSettings) if f.name != "seed"]
    return [ZooSettings(**{k: P[k] for k in keys}, seed=P["seed"] + k) for k in range(P["zoo_seeds"])]


@dataclasses.dataclass
class ZooRun:
    zoo: Zoo
    bases: list[str]
    test_models: list[str]
    truth: np.ndarray                      # index of each held-out model's true base
    probs: dict[str, np.ndarray]           # level -> (n_test, n_bases, n_query_prompts)
    nll: np.ndarray                        # (n_test, n_bases, n_query_prompts) summed over tokens
    tokens: np.ndarray
    ranking: np.ndarray                    # query prompts, most base-disagreeing first
    queries_to_test_models: int
    samples: dict                          # a few responses for display
    seconds: dict

    def attribute(self, method: str, prompts=None) -> np.ndarray:
        if method == "perplexity":
            return att.perplexity_attribution(self.nll, self.tokens, prompts)
        return att.vote(self.probs[method], prompts)

    def accuracy(self, method: str, prompts=None) -> float:
        return float((self.attribute(method, prompts) == self.truth).mean())


def run_all(P: dict, device, log=print) -> list[ZooRun]:
    start = time.perf_counter()
    zoos = build_zoos(zoo_settings(P), P["cache_dir"] or None, device, log)
    build_s = time.perf_counter() - start
    featurizer = make_featurizer(P["featurizer"], P["encoder"], device)
    runs = []
    for zoo in zoos:
        runs.append(run_zoo(P, zoo, featurizer, device))
        runs[-1].seconds["zoo build (all zoos)"] = build_s
        log(f"zoo seed {zoo.settings.seed}: " + ", ".join(
            f"{m} {runs[-1].accuracy(m):.2f}" for m in (*att.LEVELS, "perplexity")))
    return runs


def _responses(services: dict, names, prompts) -> dict[str, list[str]]:
    return {n: services[n].query(prompts) for n in names}


def run_zoo(P: dict, zoo: Zoo, featurizer, device) -> ZooRun:
    t0 = time.perf_counter()
    seed = zoo.settings.seed
    pool = corpora.prompt_pool(random.Random(seed + 55), P["train_prompts"] + P["query_prompts"])
    train_prompts, query_prompts = pool[:P["train_prompts"]], pool[P["train_prompts"]:]
    bases = [b.name for b in zoo.bases]
    zoo_models, test_models = zoo.split("zoo"), zoo.split("test")
    names = bases + [f.name for f in zoo.finetunes]
    services = {n: api.LMService.open(zoo.model_dir(n), P["response_tokens"], seed * 1000 + i, device)
                for i, n in enumerate(names)}
    t1 = time.perf_counter()
    # The auditor's own side: bases and the labelled zoo (public models), as often as needed.
    # Each base answers the training prompts twice (independent samples) and the query prompts
    # once, in one batched call.
    n = len(train_prompts)
    base_all = _responses(services, bases, train_prompts + train_prompts + query_prompts)
    base1 = {b: r[:n] for b, r in base_all.items()}
    base2 = {b: r[n:2 * n] for b, r in base_all.items()}
    base_query = {b: r[2 * n:] for b, r in base_all.items()}
    zoo_train = _responses(services, [f.name for f in zoo_models], train_prompts)
    # The scarce side: held-out fine-tunes, each asked every query prompt once.
    test_query = _responses(services, [f.name for f in test_models], query_prompts)
    queries = sum(services[f.name].queries for f in test_models)
    t2 = time.perf_counter()

    featurizer.fit([t for r in (*base1.values(), *base2.values(), *zoo_train.values()) for t in r])
    F = featurizer.transform
    feats = {"base1": [F(base1[b]) for b in bases], "base2": [F(base2[b]) for b in bases],
             "zoo": [F(zoo_train[f.name]) for f in zoo_models],
             "zoo_base": [bases.index(f.base) for f in zoo_models]}
    q_base = [F(base_query[b]) for b in bases]
    q_test = [F(test_query[f.name]) for f in test_models]
    probs = {level: att.train_and_score(level, feats, q_base, q_test, seed) for level in att.LEVELS}
    t3 = time.perf_counter()

    nll, tokens = _perplexities(services, bases, [test_query[f.name] for f in test_models])
    ranking = np.argsort(-att.disagreement(_per_char_nll(services, bases, base_query)), kind="stable")
    t4 = time.perf_counter()
    samples = {"prompts": query_prompts[:4],
               **{b: base_query[b][:4] for b in bases},
               **{f.name: test_query[f.name][:4] for f in test_models}}
    return ZooRun(zoo, bases, [f.name for f in test_models],
                  np.array([bases.index(f.base) for f in test_models]), probs, nll, tokens, ranking,
                  queries, samples,
                  {"load models": t1 - t0, "query": t2 - t1, "attributors": t3 - t2, "perplexity": t4 - t3})


def _perplexities(services, bases, responses: list[list[str]]):
    """Summed NLL and token counts of every held-out response under every base."""
    flat = [r for rs in responses for r in rs]
    shape = (len(responses), len(bases), len(responses[0]))
    nll, tokens = np.zeros(shape), np.zeros(shape)
    for b, name in enumerate(bases):
        s, n = api.token_nll(services[name].model, services[name].tokenizer, flat)
        nll[:, b], tokens[:, b] = s.reshape(shape[0], shape[2]), n.reshape(shape[0], shape[2])
    return nll, tokens


def _per_char_nll(services, bases, base_query: dict) -> np.ndarray:
    """NLL per character (comparable across tokenizers) of each base's responses under each base."""
    texts = [t for source in bases for t in base_query[source]]
    chars = np.maximum([len(t) for t in texts], 1)
    out = np.zeros((len(bases), len(bases), len(base_query[bases[0]])))
    for i, scorer in enumerate(bases):
        nll, _ = api.token_nll(services[scorer].model, services[scorer].tokenizer, texts)
        out[i] = (nll / chars).reshape(len(bases), -1)
    return out


# ---------------------------------------------------------------- summaries across zoos


def budgets(n_prompts: int) -> list[int]:
    return sorted({q for q in BUDGETS if q < n_prompts} | {n_prompts})


def budget_curves(runs: list[ZooRun], methods, n_orders: int, seed: int) -> list[dict]:
    """Accuracy against the number of query prompts per held-out model: random prompts (mean over
    ``n_orders`` draws) and prompts ranked by base-only disagreement."""
    rows = []
    n = runs[0].probs[att.LEVELS[0]].shape[-1]
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n) for _ in range(n_orders)]
    for method in methods:
        for q in budgets(n):
            for r, run in enumerate(runs):
                rand = np.mean([run.accuracy(method, o[:q]) for o in orders])
                rows.append({"method": method, "prompts": q, "zoo seed": run.zoo.settings.seed,
                             "random prompts": rand, "ranked prompts": run.accuracy(method, run.ranking[:q]),
                             "queries to held-out models": q * len(run.test_models)})
    return rows


def sibling_error_share(runs: list[ZooRun], method: str) -> dict:
    """Share of wrong attributions that land on a sibling of the true base, against the share
    expected if wrong attributions fell uniformly on the other bases."""
    errors = siblings = 0
    expected = []
    for run in runs:
        predicted = run.attribute(method)
        for t, p in zip(run.truth, predicted):
            sib = run.zoo.siblings(run.bases[t])
            if p != t:
                errors += 1
                siblings += run.bases[p] in sib
                expected.append(len(sib) / (len(run.bases) - 1))
    return {"errors": errors, "on siblings": siblings,
            "sibling share": siblings / errors if errors else float("nan"),
            "uniform share": float(np.mean(expected)) if expected else float("nan")}


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


def per_zoo(values) -> dict:
    """A quantity measured once per zoo: its mean ("gain"), standard error and number of zoos."""
    values = list(values)
    mean, se = mean_se(values)
    return {"gain": mean, "se": se, "zoos": len(values)}


def gain(runs: list[ZooRun], better: str, worse: str, prompts=None) -> dict:
    """Accuracy of ``better`` minus ``worse``, paired per zoo."""
    return per_zoo(run.accuracy(better, prompts) - run.accuracy(worse, prompts) for run in runs)


def curve_gains(curves: pd.DataFrame, method: str) -> tuple[dict, dict]:
    """From budget curves, per zoo: accuracy with all prompts minus one random prompt, and
    ranked minus random prompts averaged over the budgets below the maximum."""
    more, ranked = [], []
    for _, rows in curves[curves["method"] == method].groupby("zoo seed"):
        rows = rows.sort_values("prompts")
        more.append(rows["random prompts"].iloc[-1] - rows["random prompts"].iloc[0])
        below = rows.iloc[:-1]
        ranked.append((below["ranked prompts"] - below["random prompts"]).mean())
    return per_zoo(more), per_zoo(ranked)


def noise_caveat(*gains: dict) -> str:
    """A note for a claim when any of its gains cannot be told from zoo-to-zoo noise."""
    notes = [noise_note(g["gain"], g["se"], g["zoos"], unit="zoo") for g in gains]
    return next((n for n in notes if n), "")


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


def by_finetuning(runs: list[ZooRun], methods=("K1", MAIN_LEVEL, "perplexity")) -> pd.DataFrame:
    """One row per held-out model: its fine-tuning steps and learning rate, and whether each
    method attributed it correctly."""
    import pandas as pd

    rows = []
    for run in runs:
        specs = {f.name: f for f in run.zoo.finetunes}
        hits = {m: run.attribute(m) == run.truth for m in methods}
        for i, name in enumerate(run.test_models):
            rows.append({"zoo seed": run.zoo.settings.seed, "model": name, "steps": specs[name].steps,
                         "lr": specs[name].lr, **{m: bool(hits[m][i]) for m in methods}})
    return pd.DataFrame(rows)
