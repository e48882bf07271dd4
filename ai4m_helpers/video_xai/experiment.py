"""Chapter 10's experiment: train CA-SUM on generated videos, explain its scores on held-out
videos at fragment and object level, and measure the explanations.

Fragments are the videos' true shots (what the framework takes from a shot-segmentation network);
the summary itself uses KTS shots and a 15 % knapsack, as the benchmarks do. One replicate is one
held-out video (pooled over the trained summarisers): every explanation method explains the same
videos, so methods are compared video by video.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from .. import claims as C
from ..runtime import replicate_seeds
from . import explain, metrics
from .data import Video, make_videos
from .features import FrameFeatures
from .models import CASUM
from .summary import bounds_from_changes, kts, summarise
from .train import score, train_casum

if TYPE_CHECKING:
    import pandas as pd

FEATURE_SEED = 0          # the extractor is fixed, like a pretrained network: one for every run
METHODS = ("attention", "LIME", "summary score", "longest fragment")
BASELINE = "random"
DEPENDENCE_MIN_DROP = 0.01   # the summariser "depends" on the rare object: recolouring it lowers its shot's
                             # mean score by at least this, and by more than a placebo recolouring moves it


@dataclasses.dataclass
class Trained:
    seed: int
    model: CASUM
    losses: list[float]
    extractor: FrameFeatures
    black: np.ndarray
    test: list[Video]
    features: list[np.ndarray]


def prepare(P: dict, seed: int, device="cpu") -> Trained:
    """New train and test videos for this seed, their features, and CA-SUM trained on the train
    videos with the length regulariser."""
    import torch

    data_seed, test_seed, init_seed, order_seed = replicate_seeds(seed, 4)
    shots = (P["shot_min"], P["shot_max"])
    lengths = (P["min_frames"], P["max_frames"])
    train = make_videos(P["train_videos"], lengths, P["size"], data_seed, shot_range=shots)
    test = make_videos(P["test_videos"], lengths, P["size"], test_seed, shot_range=shots)
    extractor = FrameFeatures(P["dim"], FEATURE_SEED)
    torch.manual_seed(init_seed)
    model = CASUM(P["dim"], P["dim"], P["block"])
    model, losses = train_casum(model, [extractor(v.frames) for v in train], P["epochs"], P["sigma"],
                                batch_videos=P["batch_videos"], seed=order_seed, device=device)
    return Trained(seed, model, losses, extractor, extractor.black(P["size"]), test,
                   [extractor(v.frames) for v in test])


def summary_of(tr: Trained, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A test video's frame scores, its KTS shots and its 15 % knapsack summary."""
    feats = tr.features[k]
    scores = score(tr.model, feats)
    shots = bounds_from_changes(kts(feats, max_changes=len(feats) // 4), len(feats))
    return scores, shots, summarise(scores, shots)


# ---------------------------------------------------------------- fragment level


def fragment_scores(tr: Trained, k: int, P: dict) -> dict[str, np.ndarray]:
    """Each method's influence score per fragment (higher: more influential)."""
    v, feats = tr.test[k], tr.features[k]
    frame_scores = score(tr.model, feats)
    return {"attention": explain.attention_scores(tr.model, feats, v.bounds),
            "LIME": explain.lime_fragments(tr.model, feats, v.bounds, tr.black, P["lime_fragments"],
                                           replicate_seeds(tr.seed * 1000 + k, 1)[0]),
            "summary score": np.array([frame_scores[f].mean() for f in explain.fragment_frames(v.bounds)]),
            # masking more frames changes τ more whatever the explanation: the length baseline shows how much
            "longest fragment": np.diff(v.bounds).astype(float)}


def _disc_rows(tr, k, method, plus_orders, minus_orders) -> list[dict]:
    """Disc+ and Disc− at k = 1..3 (averaged over the orders given), one by one and in batch."""
    v, feats = tr.test[k], tr.features[k]
    rows = []
    for mode, batch in (("one by one", False), ("batch", True)):
        plus = metrics.discoverability(tr.model, feats, v.bounds, tr.black, list(plus_orders), batch).mean(0)
        minus = metrics.discoverability(tr.model, feats, v.bounds, tr.black, list(minus_orders), batch).mean(0)
        for j, kk in enumerate(metrics.KS):
            rows.append({"seed": tr.seed, "video": f"{tr.seed}/{v.name}", "method": method, "mode": mode, "k": kk,
                         "Disc+": plus[j], "Disc-": minus[j]})
    return rows


def fragment_level(tr: Trained, P: dict) -> tuple[list[dict], list[dict]]:
    """Per test video: each method's Disc± rows, and its fragment scores (for recovery)."""
    rows, rankings = [], []
    for k, v in enumerate(tr.test):
        scores = fragment_scores(tr, k, P)
        for method, s in scores.items():
            order = np.argsort(-s, kind="stable")
            rows += _disc_rows(tr, k, method, [order], [order[::-1]])
            rankings.append({"seed": tr.seed, "video": f"{tr.seed}/{v.name}", "method": method, "scores": s})
        rng = np.random.default_rng(replicate_seeds(tr.seed * 1000 + k, 2)[1])
        orders = [rng.permutation(v.n_shots) for _ in range(P["random_rankings"])]
        rows += _disc_rows(tr, k, BASELINE, orders, [rng.permutation(v.n_shots) for _ in orders])
    return rows, rankings


def sanity_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Sanity Violation per video, method and mode (share of k with Disc− < Disc+, ties half)."""
    violation = (rows["Disc-"] < rows["Disc+"]) + 0.5 * (rows["Disc-"] == rows["Disc+"])   # ties count half
    return (rows.assign(violation=violation)
            .groupby(["video", "method", "mode"], sort=False)["violation"].mean()
            .rename("SV").reset_index())


def fisher_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Disc± per method, mode and k, averaged over videos on Fisher's z and read back as τ."""
    z = rows.assign(**{c: np.arctanh(np.clip(rows[c], -0.999999, 0.999999)) for c in ("Disc+", "Disc-")})
    out = z.groupby(["method", "mode", "k"], sort=False)[["Disc+", "Disc-"]].mean()
    return np.tanh(out).reset_index()


# ---------------------------------------------------------------- object level


def _object_effects(tr: Trained, k: int, fragment: np.ndarray, objects: list[int]) -> dict[int, tuple[float, float]]:
    """For each object alone, blacked out in every frame of the fragment: the drop of the
    fragment's mean score, and Kendall's τ of its frames' scores before and after (all objects
    in one batch)."""
    v, feats = tr.test[k], tr.features[k]
    before = score(tr.model, feats)
    keep = np.ones((len(objects), len(objects)), int) - np.eye(len(objects), dtype=int)
    pixels = explain.black_out_objects(v.frames[fragment], v.objects[fragment], objects, keep)
    videos = np.repeat(feats[None], len(objects), axis=0)
    videos[:, fragment] = tr.extractor(pixels.reshape(-1, *pixels.shape[2:])).reshape(len(objects), len(fragment), -1)
    after = score(tr.model, videos)
    return {o: (float(before[fragment].mean() - after[j, fragment].mean()),
                metrics.kendall(before[fragment], after[j, fragment])) for j, o in enumerate(objects)}


def fragments_to_explain(scores: dict, summary: np.ndarray, bounds: np.ndarray, n: int) -> dict[str, list[int]]:
    """The fragments each method hands to the object level: attention's top n, LIME's top n
    positive ones, and the n highest-scoring fragments the summary selected (most of whose frames
    it kept)."""
    frames = explain.fragment_frames(bounds)
    chosen = [f for f, idx in enumerate(frames) if summary[idx].mean() > 0.5]
    by_score = sorted(chosen, key=lambda f: -scores["summary score"][f])
    positive = [f for f in np.argsort(-scores["LIME"]) if scores["LIME"][f] > 0]
    return {"attention": list(np.argsort(-scores["attention"])[:n]), "LIME": positive[:n], "summary": by_score[:n]}


def object_level(tr: Trained, P: dict, rankings: list[dict]) -> list[dict]:
    """Object-level LIME on the fragments each method picks: masking the top positive object
    against the top negative one, and against a random and the largest object."""
    rows = []
    for k, v in enumerate(tr.test):
        scores = {r["method"]: r["scores"] for r in rankings if r["video"] == f"{tr.seed}/{v.name}"}
        _, _, summary = summary_of(tr, k)
        picks = fragments_to_explain(scores, summary, v.bounds, P["explained_fragments"])
        explained = {}
        for source, fragments in picks.items():
            for f in fragments:
                f = int(f)
                if f not in explained:
                    idx = np.arange(v.bounds[f], v.bounds[f + 1])
                    objects, coef = explain.lime_objects(tr.model, tr.features[k], v.frames, v.objects, idx,
                                                         tr.extractor, P["lime_objects"],
                                                         replicate_seeds(tr.seed * 1000 + k, 3 + f)[-1])
                    explained[f] = (idx, objects, coef)
                idx, objects, coef = explained[f]
                if len(objects) < 2:
                    continue                                  # a positive and a negative need two objects
                rows.append(_object_row(tr, k, v, f, source, idx, objects, coef))
    return rows


def _object_row(tr, k, v, f, source, idx, objects, coef) -> dict:
    pos, neg = objects[int(np.argmax(coef))], objects[int(np.argmin(coef))]
    key = explain.keyframe(score(tr.model, tr.features[k]), idx)
    sizes = [(v.objects[key] == o).sum() for o in objects]
    largest = objects[int(np.argmax(sizes))]
    effects = _object_effects(tr, k, idx, objects)
    rare = {o.id for o in v.catalogue if o.rare}
    return {"seed": tr.seed, "video": f"{tr.seed}/{v.name}", "fragment": f, "picked by": source,
            "keyframe": key, "top positive": pos, "top negative": neg, "objects": len(objects), "drop, top positive": effects[pos][0], "drop, top negative": effects[neg][0],
            "τ, top positive": effects[pos][1], "τ, top negative": effects[neg][1],
            "drop, random object": float(np.mean([e[0] for o, e in effects.items() if o != pos])),
            "drop, largest object": effects[largest][0],
            "τ, random object": float(np.mean([e[1] for o, e in effects.items() if o != pos])),
            "τ, largest object": effects[largest][1], "largest is top positive": largest == pos,
            "rare object in keyframe": bool(rare & set(objects)), "top positive is rare": pos in rare}


# ---------------------------------------------------------------- the planted rare object


def _placebo(v: Video) -> tuple[int, np.ndarray] | None:
    """A common object outside the rare shot, and its colour changed to another common colour."""
    from .data import COMMON

    for o in v.catalogue:
        if not o.rare and o.shot not in v.rare_shots() and (v.objects == o.id).any():
            k = int(np.argmin(np.abs(COMMON - np.array(o.colour)).sum(axis=1)))
            return o, COMMON[(k + 1) % len(COMMON)]
    return None


def _shot_drop(tr: Trained, k: int, shot: int, frames: np.ndarray) -> float:
    v = tr.test[k]
    idx = np.arange(v.bounds[shot], v.bounds[shot + 1])
    before = score(tr.model, tr.features[k])
    after = score(tr.model, tr.extractor(frames))
    return float(before[idx].mean() - after[idx].mean())


def rare_dependence(tr: Trained, rankings: list[dict], P: dict) -> list[dict]:
    """Per test video, an intervention first: does the summariser depend on the rare object's
    distinct colour? The counterfactual video paints it in a common colour (same shape, size,
    motion); a placebo repaints a common object of another shot in another common colour. The
    dependence holds if the rare shot's mean score drops by at least DEPENDENCE_MIN_DROP and by
    more than the placebo moves its own shot's. Then, on every video, whether each ranking puts the
    rare shot in its top 3 (a random ranking does so with probability 3 / shots) and whether
    object LIME on the rare shot makes the rare object its top positive object (chance 1 /
    objects)."""
    from .data import COMMON

    rows = []
    for k, v in enumerate(tr.test):
        rare = [o for o in v.catalogue if o.rare]
        if not rare:
            continue
        shot, rare_id = rare[0].shot, rare[0].id
        drop = _shot_drop(tr, k, shot, v.recoloured(rare_id, COMMON[0]))
        placebo = _placebo(v)
        placebo_drop = _shot_drop(tr, k, placebo[0].shot, v.recoloured(placebo[0].id, placebo[1])) if placebo else 0.0
        idx = np.arange(v.bounds[shot], v.bounds[shot + 1])
        objects, coef = explain.lime_objects(tr.model, tr.features[k], v.frames, v.objects, idx, tr.extractor,
                                             P["lime_objects"], replicate_seeds(tr.seed * 1000 + k, 40)[-1])
        row = {"seed": tr.seed, "video": f"{tr.seed}/{v.name}", "shots": v.n_shots, "rare shot": shot,
               "drop when recoloured": drop, "placebo drop": placebo_drop,
               "depends on it": drop >= max(DEPENDENCE_MIN_DROP, abs(placebo_drop)),
               "objects in its keyframe": len(objects),
               "LIME: rare object is top positive": bool(objects) and objects[int(np.argmax(coef))] == rare_id}
        for r in rankings:
            if r["video"] == row["video"]:
                row[f"{r['method']}: rare shot in top 3"] = bool(shot in np.argsort(-r["scores"], kind="stable")[:3])
        rows.append(row)
    return rows


# ---------------------------------------------------------------- the claims, margins fixed before any run

SV_MARGIN = 0.1          # "well below the random baseline": at least 0.1 lower Sanity Violation
UNIT = "video"


def _z(x) -> np.ndarray:
    return np.arctanh(np.clip(np.asarray(x, float), -0.999999, 0.999999))


def _margin_by_video(batch: pd.DataFrame, method: str) -> pd.Series:
    """Per video: the mean over k of z(Disc−) − z(Disc+) (batch masking)."""
    part = batch[batch["method"] == method]
    return (part.assign(gap=_z(part["Disc-"]) - _z(part["Disc+"])).groupby("video")["gap"].mean())


def disc_claim(rows: pd.DataFrame, sv: pd.DataFrame) -> C.Claim:
    """For attention and for LIME (batch masking): Disc+ below Disc− at k = 1, 2, 3 (per video,
    on Fisher's z); a larger Disc− − Disc+ than the fragment-length ranking's (mean over k); and
    Sanity Violation at least 0.1 below the better of the random and fragment-length rankings."""
    parts = {}
    batch = rows[rows["mode"] == "batch"]
    sv_batch = sv[sv["mode"] == "batch"].pivot(index="video", columns="method", values="SV")
    length_gap = _margin_by_video(batch, "longest fragment")
    for method in ("attention", "LIME"):
        for k in metrics.KS:
            part = batch[(batch["method"] == method) & (batch["k"] == k)].sort_values("video")
            parts[f"{method}, k = {k}"] = C.decide(f"{method}: Disc− − Disc+ at k = {k} (Fisher z)",
                                                   C.paired(_z(part["Disc+"]), _z(part["Disc-"]), UNIT),
                                                   direction="greater", margin=0.0)
        gap = _margin_by_video(batch, method)
        parts[f"{method}, over fragment length"] = C.decide(
            f"{method}: (Disc− − Disc+) minus the longest-fragment ranking's, mean over k",
            C.paired(length_gap.loc[gap.index], gap, UNIT), direction="greater", margin=0.0)
        bar = sv_batch[[BASELINE, "longest fragment"]].min(axis=1)
        parts[f"{method}, SV"] = C.decide(f"{method}: the better baseline's SV − {method}'s SV",
                                          C.paired(sv_batch[method], bar, UNIT), direction="greater", margin=SV_MARGIN)
    return C.combine("fragment level: the top fragments matter more than the bottom ones (Disc+ < Disc− at "
                     "k = 1..3), more than fragment length explains, and Sanity Violation well below the "
                     "baselines, for attention and for LIME", parts, rule="all")


def object_claim(objects: pd.DataFrame) -> C.Claim:
    """Per video (averaging its explained fragments), on Kendall's τ over a fragment's frames
    (the paper's measure): blacking out the top positive object changes the scores more (lower τ)
    than blacking out the top negative one, and than blacking out one of the other objects (on
    fragments with three or more)."""
    unique = objects.drop_duplicates(["video", "fragment"])
    per_video = unique.groupby("video")[["τ, top positive", "τ, top negative"]].mean()
    three = unique[unique["objects"] >= 3].groupby("video")[["τ, top positive", "τ, random object"]].mean()
    parts = {
        "against the top negative": C.decide("τ (top negative) − τ (top positive)",
                                             C.paired(per_video["τ, top positive"], per_video["τ, top negative"], UNIT),
                                             direction="greater", margin=0.0),
        "against another object": C.decide("τ (another object) − τ (top positive), fragments of 3+ objects",
                                           C.paired(three["τ, top positive"], three["τ, random object"], UNIT),
                                           direction="greater", margin=0.0,
                                           unmeasurable=None if len(three) else "no fragment with three objects"),
    }
    return C.combine("object level: blacking out the top positive object changes the fragment's scores more than "
                     "the top negative object or another one", parts, rule="all",
                     evidence={"fragments": len(unique), "videos": len(per_video),
                               "share where the largest object is the top positive":
                               float(unique["largest is top positive"].mean())})


def recovery_claim(rare: pd.DataFrame) -> C.Claim:
    """On the videos where the summariser depends on the rare object (the recolouring
    intervention), attention and LIME put the rare shot in their top 3 more often than a random
    ranking (3 / shots) and than the summary-score ranking, and object LIME makes the rare object
    its top positive object more often than chance (1 / objects)."""
    held = rare[rare["depends on it"]]
    why = None if len(held) else "no video where the summariser depends on the rare object"
    parts = {}
    for method in ("attention", "LIME"):
        hit = held[f"{method}: rare shot in top 3"].astype(float)
        parts[f"{method} over random"] = C.decide(f"{method}: rare shot in the top 3, minus a random ranking's chance",
                                                  C.mean_ci(hit - 3 / held["shots"], UNIT), direction="greater",
                                                  margin=0.0, unmeasurable=why)
        parts[f"{method} over summary score"] = C.decide(
            f"{method} minus the summary-score ranking: rare shot in the top 3",
            C.paired(held["summary score: rare shot in top 3"].astype(float), hit, UNIT), direction="greater",
            margin=0.0, unmeasurable=why)
    obj = held[held["objects in its keyframe"] >= 2]
    hits = obj["LIME: rare object is top positive"].astype(float) - 1 / obj["objects in its keyframe"]
    parts["LIME, rare object"] = C.decide("object LIME: rare object is the top positive, minus chance",
                                          C.mean_ci(hits, UNIT), direction="greater", margin=0.0,
                                          unmeasurable=None if len(obj) else "no dependent video with two objects")
    return C.combine("where the summariser depends on the rare object, explanations find its shot (above random "
                     "and the summary-score ranking) and the object above chance", parts, rule="all",
                     evidence={"videos that depend on it": len(held), "videos": len(rare)})


def decide_claims(rows, sv, objects, rare) -> list[C.Claim]:
    return [disc_claim(rows, sv), object_claim(objects), recovery_claim(rare)]
