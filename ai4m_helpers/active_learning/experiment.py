"""Chapter 7's experiment: every task, strategy, seed and start in a few batched loops."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import mean_se
from .loop import LoopConfig, LoopResult, Member, run_loop
from .strategies import STRATEGIES, UNCERTAINTY, make_kal
from .tasks import Task, biased_initial, digits_task, iris_task, random_initial, xor_task

STARTS = ("random", "biased")
# Per task: first labels, labels per round, and the region(s) a biased start draws from.
SETTINGS = {"xor": dict(n_initial=10, per_round=5, biased=(0,)),
            "iris": dict(n_initial=5, per_round=5, biased=(0,)),
            "digits": dict(n_initial=10, per_round=10, biased=(0, 1))}
KAL_NAMES = ("kal", "kal_diversity", "kal_plain")


def strategies(p: dict) -> dict:
    table = dict(STRATEGIES)
    table["kal"] = make_kal(diversity=True, uncertainty=p["kal_mu"])
    return table


def build_task(name: str, p: dict) -> Task:
    if name == "xor":
        return xor_task(p["xor_pool"], 1000 if p["profile"] == "smoke" else 5000, p["seed"])
    if name == "iris":
        return iris_task(50, p["seed"])
    return digits_task(500, p["seed"])


def initial_labels(task: Task, p: dict) -> dict[tuple[int, str], np.ndarray]:
    s = SETTINGS[task.name]
    out = {}
    for seed in range(p["seed"], p["seed"] + p["seeds"]):
        rng = np.random.default_rng(seed)
        out[(seed, "random")] = random_initial(task, s["n_initial"], rng)
        out[(seed, "biased")] = biased_initial(task, s["n_initial"], rng, s["biased"])
    return out


def run_task(task: Task, p: dict, device, progress=None) -> LoopResult:
    s = SETTINGS[task.name]
    cfg = LoopConfig(n_initial=s["n_initial"], per_round=s["per_round"], rounds=p[f"{task.name}_rounds"],
                     hidden=p["hidden"], lr=p["lr"], epochs=p["epochs"], mc_passes=p["mc_passes"])
    members = [Member(name, seed, start) for start in STARTS
               for seed in range(p["seed"], p["seed"] + p["seeds"]) for name in STRATEGIES]
    return run_loop(task, strategies(p), members, initial_labels(task, p), cfg, device, progress)


def summary(task: Task, res: LoopResult) -> pd.DataFrame:
    """Per strategy and start: mean F1 over rounds, final F1, rounds to cover every region,
    final rule-violation rate and selection time (means over seeds)."""
    cover = res.rounds_to_cover(len(task.region_names))
    rows = []
    for start in STARTS:
        for name in STRATEGIES:
            m = res.index(name, start)
            rows.append({"task": task.name, "start": start, "strategy": name,
                         "mean F1 over rounds": res.f1[:, m].mean(), "final F1": res.f1[-1, m].mean(),
                         "rounds to cover all regions": cover[m].mean(),
                         "final violation rate": res.violation_rate[-1, m].mean(),
                         "selection s": res.selection_s[m].mean()})
    return pd.DataFrame(rows)


def per_seed(res: LoopResult, strategy: str, start: str, what: str) -> np.ndarray:
    m = res.index(strategy, start)
    if what == "auc":
        return res.f1[:, m].mean(0)
    if what == "violation":
        return res.violation_rate[-1, m]
    if what == "selection":
        return res.selection_s[m]
    raise ValueError(what)


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    """Mean of b - a over seeds, its standard error, and a Wilcoxon signed-rank p-value (>= 5 seeds)."""
    from scipy.stats import wilcoxon

    d = np.asarray(b, float) - np.asarray(a, float)
    mean, se = mean_se(d)
    out = {"diff": mean, "se": se}
    if len(d) >= 5 and np.any(d != 0):
        out["wilcoxon_p"] = float(wilcoxon(d).pvalue)
    return out


BASELINES_F1 = ("random",) + UNCERTAINTY
