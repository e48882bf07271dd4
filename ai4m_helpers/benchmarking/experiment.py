"""Chapter 9's experiment: a competition on the platform, run as organisers and participants
would run it, with the book's own methods and with faulty submissions planted on purpose.

Everything goes through the platform's own API (:class:`.platform.Platform`) and its workers,
the way the HTTP service drives it; nothing here scores or times a submission by itself.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib
import time
from typing import TYPE_CHECKING

import numpy as np

from .. import claims as C
from .examples import CHEAT, FAULTY, METHODS, TORCH_CNN
from .platform import Platform, Refused, run_workers
from .storage import FINISHED

if TYPE_CHECKING:
    import pandas as pd

TIME_TOLERANCE = 1.5        # claim 1: a rerun's ingestion time within ×1.5 either way
SCALING = ("k nearest neighbours", "logistic regression")
GROWS, FLAT = 0.5, 0.25     # claim 3: log-log slope of predict time against n: kNN above, logistic below
SEPARATES = 2.0             # claim 3: kNN's time per 1k predictions at least twice logistic regression's
PHASE = "main"
PHASE_START, PHASE_END = "2026-01-01T00:00:00+00:00", "2026-12-31T00:00:00+00:00"


def bundle_text(P: dict, train_size: int, title: str) -> str:
    """The competition's bundle, as an organiser writes it."""
    return f"""title: {title}
description: classify the images of scikit-learn's digits; code or result submissions
data:
  dataset: {P["dataset"]}
splits:
  seed: 0
  public: 0.2
  private: 0.2
  train_size: {train_size}
metrics: [accuracy, macro_f1]
primary: accuracy
phases:
  - name: {PHASE}
    start: "{PHASE_START}"
    end: "{PHASE_END}"
limits:
  wall_s: {P["wall_s"]}
  cpu_s: {P["cpu_s"]}
  memory_mb: {P["memory_mb"]}
  processes: 32
  gpu: {"true" if P["torch_cnn"] else "false"}
  submissions_per_day: 50
"""


def slug(n: int) -> str:
    return f"digits-n{n}"


def during_phase() -> dt.datetime:
    """A moment inside the phase (the chapter plays the competition out on a fixed calendar)."""
    return dt.datetime.fromisoformat(PHASE_START) + dt.timedelta(days=30)


def after_phase() -> dt.datetime:
    return dt.datetime.fromisoformat(PHASE_END) + dt.timedelta(days=1)


@dataclasses.dataclass
class Campaign:
    platform: Platform
    tokens: dict[str, str]                   # participant -> token
    organiser: str
    main: str                                # the main competition's slug
    methods: list[dict]                      # submission id, method, size, run
    faulty: list[dict]                       # submission id, name, expected failure
    wall_s: float = 0.0
    cheat: int | None = None                 # the submission that looks the "hidden" labels up


def nan_csv(n: int) -> str:
    rows = [f"{i},{'nan' if i == 3 else 0}" for i in range(n)]
    return "id,label\n" + "\n".join(rows) + "\n"


def run_campaign(P: dict, folder: pathlib.Path) -> Campaign:
    """Create the competitions, register participants, submit every method ``seeds`` times on
    every training size (the main competition is the largest) and every faulty submission once,
    then let the workers drain the queue."""
    platform = Platform(pathlib.Path(folder) / "platform")
    sizes = P["train_sizes"]
    for n in sizes:
        platform.create(slug(n), bundle_text(P, n, f"Digits with {n} training images"))
    main = slug(max(sizes))
    organiser = platform.register("organiser", organiser=True)
    tokens = {name: platform.register(name) for name in [*METHODS, "small CNN (torch)", "mallory"]}
    now = during_phase()
    methods, faulty = [], []
    entries = {**METHODS, **({"small CNN (torch)": TORCH_CNN} if P["torch_cnn"] else {})}
    for run in range(P["seeds"]):
        for n in sizes:
            for name, code in entries.items():
                if n != max(sizes) and name not in SCALING:
                    continue
                sid = platform.submit(tokens[name], slug(n), PHASE, "code", code.encode(), f"{name} (run {run + 1})",
                                      now=now)
                methods.append({"submission": sid, "method": name, "train size": n, "run": run})
    n_test = len(platform.load(main).labels)
    tokens["eve"] = platform.register("eve")
    cheat = platform.submit(tokens["eve"], main, PHASE, "code", CHEAT.encode(), "looks the labels up", now=now)
    for name, (kind, payload, expected) in FAULTY.items():
        text = (payload.replace("{db}", str(platform.data_dir / "platform.db")).replace("{nan_csv}", nan_csv(n_test))
                .replace("{memory_mb}", str(P["memory_mb"])))
        sid = platform.submit(tokens["mallory"], main, PHASE, kind, text.encode(), name, now=now)
        faulty.append({"submission": sid, "name": name, "expected": expected})
    start = time.perf_counter()
    run_workers(platform, P["jobs"], P["backend"])
    return Campaign(platform, tokens, organiser, main, methods, faulty, time.perf_counter() - start, cheat)


# -- tables ---------------------------------------------------------------------------------------
def submissions_frame(c: Campaign) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for m in c.methods:
        sub = c.platform.store.get(m["submission"])
        costs = sub.costs or {}
        rows.append({**m, "status": sub.status, "failure": sub.failure,
                     "public accuracy": (sub.scores or {}).get("public", {}).get("accuracy"),
                     "private accuracy": (sub.scores or {}).get("private", {}).get("accuracy"),
                     **{k: costs.get(k) for k in ("wall_s", "cpu_s", "peak_mb", "fit_s", "predict_s",
                                                  "ms_per_1k_predictions", "flops", "gpu_peak_mb")}})
    return pd.DataFrame(rows)


def faulty_frame(c: Campaign) -> pd.DataFrame:
    """Expected against observed status of every planted faulty submission, whether its logs were
    kept, and whether it reached any leaderboard."""
    import pandas as pd

    on_board = {row["submission"] for split in ("public", "private")
                for row in c.platform.leaderboard(c.main, PHASE, split, token=c.organiser)}
    rows = []
    for f in c.faulty:
        sub = c.platform.store.get(f["submission"])
        logs = c.platform.logs(c.tokens["mallory"], f["submission"])
        kept = any(log["text"].strip() for log in logs) or (sub.failure == "refused" and bool(sub.message))
        rows.append({"submission": f["name"], "expected": f["expected"], "observed": sub.failure or sub.status,
                     "message": sub.message[:90], "logs kept": kept,
                     "on a leaderboard": f["submission"] in on_board})
    out = pd.DataFrame(rows)
    out["right"] = (out["expected"] == out["observed"]) & out["logs kept"] & ~out["on a leaderboard"]
    return out


def leaderboard_frame(c: Campaign, split: str, now: dt.datetime) -> pd.DataFrame:
    import pandas as pd

    board = c.platform.leaderboard(c.main, PHASE, split, now=now)
    cols = ["rank", "participant", "label", "accuracy", "macro_f1", "wall_s", "cpu_s", "peak_mb",
            "ms_per_1k_predictions", "flops", "gpu_peak_mb"]
    return pd.DataFrame(board).reindex(columns=cols) if board else pd.DataFrame(columns=cols)


def private_before_the_end(c: Campaign) -> str:
    """What a participant gets when asking for the private leaderboard during the phase."""
    try:
        c.platform.leaderboard(c.main, PHASE, "private", token=c.tokens["mallory"], now=during_phase())
    except Refused as err:
        return f"refused: {err}"
    return "served (it should not be)"


def scaling_frame(subs: pd.DataFrame) -> pd.DataFrame:
    """Per method and run: the log-log slope of the prediction time against the training size."""
    import pandas as pd

    rows = []
    for (method, run), part in subs[subs["method"].isin(SCALING) & (subs["status"] == FINISHED)].groupby(
            ["method", "run"]):
        part = part.sort_values("train size")
        slope = np.polyfit(np.log(part["train size"]), np.log(part["predict_s"]), 1)[0]
        rows.append({"method": method, "run": run, "slope": float(slope), "sizes": len(part)})
    return pd.DataFrame(rows)


# -- claims ---------------------------------------------------------------------------------------
def _exact(name: str, value: float, n: int, unit: str, direction: str, margin: float, evidence=None) -> C.Claim:
    """A check without sampling noise: the value is its own interval."""
    return C.decide(name, C.Estimate(value, (value, value), n, unit, "exact (deterministic)"),
                    direction=direction, margin=margin, evidence=evidence, min_n=1)


def reproducibility_claim(c: Campaign, subs: pd.DataFrame) -> C.Claim:
    main = subs[(subs["train size"] == subs["train size"].max()) & (subs["status"] == FINISHED)]
    spread = main.groupby("method")[["public accuracy", "private accuracy"]].agg(np.ptp).to_numpy().max()
    # The ingestion step's elapsed time (AI4MediaBench's time metric): start-up, fit and predict.
    first = main[main["run"] == 0].set_index("method")["wall_s"]
    ratios = [abs(float(np.log(r["wall_s"] / first[r["method"]]))) for _, r in main[main["run"] > 0].iterrows()]
    stored = c.platform.load(c.main).split_sha256
    finished = [m["submission"] for m in c.methods if c.platform.store.get(m["submission"]).status == FINISHED]
    unverified = sum(not any(f"split hash {stored} verified" in log["text"] for log in c.platform.store.logs(sid))
                     for sid in finished if c.platform.store.get(sid).competition_id == c.platform.load(c.main).id)
    parts = {
        "scores": _exact("largest spread of a method's scores over its runs", float(spread), len(main), "run",
                         "less", 1e-12),
        "split hash": _exact("scored submissions whose worker did not recompute the stored split hash",
                             float(unverified), len(finished), "submission", "less", 0.5),
        f"time within ×{TIME_TOLERANCE}": _exact(
            "largest |log| of a rerun's ingestion time over the first run's", max(ratios), len(ratios), "rerun",
            "less", float(np.log(TIME_TOLERANCE))),
    }
    return C.combine("reruns reproduce scores exactly, times within a tolerance, and the same splits", parts,
                     rule="all")


def error_claim(faulty: pd.DataFrame) -> C.Claim:
    wrong = int((~faulty["right"]).sum())
    return _exact("planted faulty submissions without the right status, their logs, or kept off the leaderboards",
                  wrong, len(faulty), "faulty submission", "less", 0.5,
                  evidence={"wrong": faulty.loc[~faulty["right"], "submission"].tolist()})


def slope_estimate(subs: pd.DataFrame, method: str) -> C.Estimate:
    """The log-log slope of a method's prediction time against the training size, fitted over
    every (size, run) point, with its t interval (n - 2 degrees of freedom)."""
    from scipy import stats

    part = subs[(subs["method"] == method) & (subs["status"] == FINISHED)]
    x, y = np.log(part["train size"].to_numpy(float)), np.log(part["predict_s"].to_numpy(float))
    if len(x) < 3 or np.ptp(x) == 0:
        return C.Estimate(float("nan"), None, len(x), "run × size", "OLS slope", reason="too few sizes")
    fit = stats.linregress(x, y)
    half = stats.t.ppf(0.5 + C.LEVEL / 2, len(x) - 2) * fit.stderr
    return C.Estimate(float(fit.slope), (float(fit.slope - half), float(fit.slope + half)), len(x), "run × size",
                      "OLS slope, t interval")


def time_metric_claim(subs: pd.DataFrame) -> C.Claim:
    largest = subs[(subs["train size"] == subs["train size"].max()) & (subs["status"] == FINISHED)]
    per_1k = {m: largest[largest["method"] == m].sort_values("run")["ms_per_1k_predictions"].to_numpy()
              for m in SCALING}
    knn, logistic = SCALING
    parts = {
        "kNN grows": C.decide(f"log-log slope of {knn}'s prediction time against the training size",
                              slope_estimate(subs, knn), direction="greater", margin=GROWS),
        "logistic does not": C.decide(f"log-log slope of {logistic}'s prediction time against the training size",
                                      slope_estimate(subs, logistic), direction="less", margin=FLAT),
        "separates": C.decide(f"log ratio of {knn}'s to {logistic}'s time per 1k predictions (largest size)",
                              C.mean_ci(np.log(per_1k[knn] / per_1k[logistic]), unit="run"),
                              direction="greater", margin=float(np.log(SEPARATES))),
    }
    return C.combine("the time metric separates methods and scales as expected", parts, rule="all")


def decide_claims(c: Campaign, subs: pd.DataFrame, faulty: pd.DataFrame) -> list[C.Claim]:
    return [reproducibility_claim(c, subs), error_claim(faulty), time_metric_claim(subs)]
