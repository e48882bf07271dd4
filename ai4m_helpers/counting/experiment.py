"""The chapter's experiment: on one annotated dataset (fixed, as FSC-147 is), per replicate seed,
fine-tune a ControlNet on the density maps (or load the shipped one), generate every arm's
synthetic images, train one counter per arm, and measure.

A replicate is everything after the data under one seed: the ControlNet when it is trained
here, the generation noise and swaps, the counters' initial weights and batches. Counters of one
seed start from the same weights and train for the same number of steps with the same batch
size: an arm differs from another only in the images its batches draw from.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import torch

from ..claims import Claim, combine, decide, mean_ci, paired
from ..data.counting import VOCAB, Scenes
from ..runtime import replicate_seeds, seed_everything
from . import augment, measures, text, train
from .data import chapter_sets
from .pretrain import load_base, load_controlnet, load_judge

ARMS = ("real", "no_density", "density", "swap", "swap_any")
ARM_NAMES = {"real": "real only", "no_density": "+ synthetic, no density control (img2img)",
             "density": "+ synthetic, density control, no swap",
             "swap": "+ synthetic, density control, similar-caption swap (SemAug)",
             "swap_any": "+ synthetic, density control, any-caption swap"}
# Margins, fixed before any result: count fidelity must improve by at least one object per image;
# the downstream comparisons must merely be better (interval clear of zero).
FIDELITY_MARGIN = 1.0
DOWNSTREAM_MARGIN = 0.0
# A counter measures count fidelity only if it counts real held-out scenes with at most half the
# error of always answering their mean count; otherwise its part of claim 1 is unmeasurable.
INSTRUMENT_RATIO = 0.5


@dataclasses.dataclass
class SeedRun:
    seed: int
    sets: dict
    captions: list                 # the training captions (unique), indexed by caption ids
    caption_factors: dict          # attribute -> (n_captions,) indices
    similarities: np.ndarray
    candidates: dict
    controlnet_losses: list
    controlnet_made: dict          # where the ControlNet came from, and its training steps
    synthetic: dict                # arm -> SyntheticSet
    counter_curves: np.ndarray
    test_counts: pd.DataFrame      # one column per arm, one row per test image
    val_counts: np.ndarray         # real-only counter on held-out real scenes
    fidelity: pd.DataFrame
    quality: pd.DataFrame
    timings: dict


def caption_table(scenes: Scenes):
    """Unique captions of a set, each image's caption id, and each caption's attributes."""
    captions = sorted(set(scenes.captions))
    ids = np.array([captions.index(c) for c in scenes.captions])
    first = [scenes.captions.index(c) for c in captions]
    factors = {k: scenes.factors[k][first] for k in VOCAB}
    return captions, ids, factors


def run_seed(P: dict, seed: int, base, sets: dict, judge, device) -> SeedRun:
    """Everything after the data under one seed."""
    seed_everything(seed)
    timings = {}
    t = time.perf_counter()
    real = sets["train"]
    captions, caption_ids, caption_factors = caption_table(real)
    emb = text.embed(captions)
    sims = text.similarity(emb, emb)
    candidates = {"swap": augment.swap_candidates(sims, P["swap_threshold"]),
                  "swap_any": augment.swap_candidates(sims, None)}
    emb_t = torch.from_numpy(emb).to(device)
    timings["data"] = time.perf_counter() - t

    t = time.perf_counter()
    if P["controlnet"] == "shipped":
        controlnet, made = load_controlnet(base, device)
        cn_losses = made["loss_curve"]
        made = {"source": "shipped", **{k: made[k] for k in ("steps", "batch", "lr", "train_s")}}
    else:
        controlnet, cn_losses = augment.train_controlnet(
            base, real, emb_t[torch.from_numpy(caption_ids).to(device)],
            steps=P["controlnet_steps"], batch=P["controlnet_batch"], lr=P["controlnet_lr"],
            seed=seed, device=device)
        made = {"source": "trained here", "steps": P["controlnet_steps"],
                "batch": P["controlnet_batch"], "lr": P["controlnet_lr"]}
    timings["controlnet"] = time.perf_counter() - t

    sources = np.sort(np.random.default_rng([seed, 1]).permutation(len(real))[:P["n_sources"]])
    synthetic = {}
    for arm in augment.GENERATION_ARMS:
        # The three density arms draw the same noise (and the same swap decisions): an image
        # whose caption was not swapped is the very image of the no-swap arm.
        noise_seed = seed + (29 if arm == "no_density" else 17)
        synthetic[arm] = augment.generate(
            arm, base, controlnet, real, caption_ids, emb_t, candidates, sources=sources,
            per_image=P["per_image"], swap_probability=P["swap_probability"],
            steps=P["ddim_steps"], guidance=P["guidance"], t0=P["img2img_t0"],
            seed=noise_seed, device=device)
        timings[f"generate {arm}"] = synthetic[arm].seconds

    t = time.perf_counter()
    per_arm = {arm: synthetic.get(arm) for arm in ARMS}
    # Count fidelity is judged on the synthetic images of these sources, by a counter that never
    # saw them: all sources when they are at most half the training scenes, else half of them.
    judged = sources if len(sources) <= len(real) // 2 else np.sort(
        np.random.default_rng([seed, 2]).choice(sources, len(real) // 2, replace=False))
    stack, curves = train.train_counters(
        real, per_arm, steps=P["counter_steps"], batch=P["counter_batch"], lr=P["counter_lr"],
        share=P["synthetic_share"], seed=seed, heldout=judged, device=device)
    timings["counters"] = time.perf_counter() - t

    t = time.perf_counter()
    test = sets["test"]
    counts = train.predict_counts(stack, test.images, test.boxes, device)[:len(ARMS)]
    test_counts = pd.DataFrame(counts.T, columns=list(ARMS))
    test_counts["truth"] = test.counts
    test_counts["shape"] = [VOCAB["shape"][s] for s in test.factors["shape"]]
    val = sets["val"]
    val_counts = train.predict_counts(stack, val.images, val.boxes, device, member=-1)[0]
    fidelity, quality = measure_synthetic(stack, judge, real, synthetic, caption_factors, judged,
                                          device)
    timings["measures"] = time.perf_counter() - t
    return SeedRun(seed, sets, captions, caption_factors, sims, candidates, cn_losses, made,
                   synthetic, curves, test_counts, val_counts, fidelity, quality, timings)


def measure_synthetic(stack, net, real: Scenes, synthetic: dict, caption_factors: dict,
                      judged: np.ndarray, device):
    """Per synthetic image of a ``judged`` source: count errors, against the source's count, by
    the stack's last member (a counter trained on the real images that are *not* judged sources,
    so it cannot have memorised a source that an img2img image nearly copies) and by the
    classical counter; per arm, over all its images: attribute faithfulness (judged by ``net``),
    diversity, and what the swaps changed."""
    _, real_features = train.attribute_predictions(net, real.images, device)
    rows = []
    quality = [{"arm": "real (held out)", **{f"{k} accuracy": v for k, v in net.real_accuracy.items()},
                "diversity": float("nan"), "seconds": 0.0, "images": net.real_images}]
    for arm, syn in synthetic.items():
        pick = np.flatnonzero(np.isin(syn.source, judged))
        src = syn.source[pick]
        truth = real.counts[src]
        learned = train.predict_counts(stack, syn.images[pick], real.boxes[src], device,
                                         member=-1)[0]
        colours = caption_factors["colour"][syn.caption[pick]]
        classical = measures.classical_count(syn.images[pick], colours)
        rows.append(pd.DataFrame({"arm": arm, "image": pick, "truth": truth,
                                  "learned": learned, "classical": classical,
                                  "swapped": syn.caption[pick] != syn.own[pick],
                                  "learned_error": np.abs(learned - truth),
                                  "classical_error": np.abs(classical - truth)}))
        predicted, features = train.attribute_predictions(net, syn.images, device)
        intended = {k: caption_factors[k][syn.caption] for k in VOCAB}
        acc = measures.attribute_accuracy(predicted, intended)
        distance = measures.feature_distance(features, real_features[syn.source])
        swapped = syn.caption != syn.own
        changed = {f"swaps changing {k}": float(np.mean(caption_factors[k][syn.caption[swapped]]
                                                        != caption_factors[k][syn.own[swapped]]))
                   if swapped.any() else float("nan") for k in VOCAB}
        quality.append({"arm": arm, **{f"{k} accuracy": v for k, v in acc.items()},
                        "diversity": float(distance.mean()), "swapped": float(swapped.mean()),
                        **changed, "seconds": syn.seconds, "images": len(syn.images)})
    return pd.concat(rows, ignore_index=True), pd.DataFrame(quality)


def run(P: dict, device) -> list[SeedRun]:
    """Every replicate seed of the chapter, on the dataset of ``data_seed``."""
    base = load_base(device)
    sets = chapter_sets(P["data_seed"], P["n_train"], P["n_val"], P["n_test"])
    judge = attribute_judge(sets, device)
    return [run_seed(P, s, base, sets, judge, device)
            for s in replicate_seeds(P["seed"], P["seeds"])]


def attribute_judge(sets: dict, device):
    """The shipped attribute classifier (trained on the captioned pool, never on an annotated
    scene); its accuracy on the held-out real scenes is the yardstick for its verdicts on
    synthetic ones."""
    net, _ = load_judge(device)
    predicted, _ = train.attribute_predictions(net, sets["val"].images, device)
    net.real_accuracy = measures.attribute_accuracy(predicted, sets["val"].factors)
    net.real_images = len(sets["val"])
    return net


# -- tables -------------------------------------------------------------------------------------
def downstream(runs: list[SeedRun], by_shape: bool = False) -> pd.DataFrame:
    """MAE and RMSE on the unseen test shapes, per seed and arm (and per shape)."""
    rows = []
    for i, r in enumerate(runs):
        groups = r.test_counts.groupby("shape") if by_shape else [("all", r.test_counts)]
        for shape, part in groups:
            for arm in ARMS:
                rows.append({"seed": i, "arm": arm, "shape": shape,
                             "MAE": measures.mae(part[arm], part.truth),
                             "RMSE": measures.rmse(part[arm], part.truth)})
    return pd.DataFrame(rows)


def fidelity(runs: list[SeedRun]) -> pd.DataFrame:
    return pd.concat([r.fidelity.assign(seed=i) for i, r in enumerate(runs)], ignore_index=True)


def quality(runs: list[SeedRun]) -> pd.DataFrame:
    return pd.concat([r.quality.assign(seed=i) for i, r in enumerate(runs)], ignore_index=True)


# -- claims -------------------------------------------------------------------------------------
def fidelity_claim(fid: pd.DataFrame, per_seed: bool = False, floors: dict | None = None) -> Claim:
    """Claim 1, measured by two counters that share nothing; held only if both agree. The
    replicate is a synthetic image when every seed shares one generator (the shipped ControlNet:
    the claim is then about that generator), a seed when each seed fine-tunes its own. ``floors``
    (from :func:`intrinsic_errors`) says whether each counter can count real scenes at all."""
    parts, floors = {}, floors or {}
    for counter in ("learned", "classical"):
        col = f"{counter}_error"
        with_density = fid[fid.arm == "density"].sort_values(["seed", "image"])
        without = fid[fid.arm == "no_density"].sort_values(["seed", "image"])
        if per_seed:
            a = with_density.groupby("seed")[col].mean().to_numpy()
            b = without.groupby("seed")[col].mean().to_numpy()
            est = paired(a, b, unit="seed")
        else:
            est = paired(with_density[col].to_numpy(), without[col].to_numpy(),
                         unit="synthetic image")
        floor, trivial = floors.get(f"{counter} counter MAE on real"), floors.get("mean-count MAE on real")
        invalid = None
        if floor is not None and trivial and floor > INSTRUMENT_RATIO * trivial:
            invalid = (f"the {counter} counter's own error on real scenes ({floor:.2f}) is not below "
                       f"{INSTRUMENT_RATIO:g} x that of always answering the mean count ({trivial:.2f})")
        parts[counter] = decide(
            f"count error without minus with density control ({counter} counter)", est,
            direction="greater", margin=FIDELITY_MARGIN, unmeasurable=invalid,
            evidence={"MAE with density": float(with_density[col].mean()),
                      "MAE without density": float(without[col].mean()),
                      "MAE on real scenes": floor})
    return combine("Density-conditioned synthetic images keep their count better, by at least "
                   "one object per image, than images generated without the density branch",
                   parts, rule="all")


def _paired_arms(table: pd.DataFrame, worse: str, better: str, metric: str):
    a = table[table.arm == worse].sort_values("seed")[metric].to_numpy()
    b = table[table.arm == better].sort_values("seed")[metric].to_numpy()
    return paired(b, a, unit="seed"), {f"{metric} {worse}": float(a.mean()),
                                       f"{metric} {better}": float(b.mean())}


def downstream_claims(table: pd.DataFrame) -> list[Claim]:
    """Claims 2-5, decided per unseen shape (each effect is worse arm - better arm, paired by
    seed) and combined by majority: held on more than half of the unseen shapes."""
    shapes = sorted(set(table["shape"]))

    def per_shape(name, worse, better, metric="MAE"):
        parts = {}
        for shape in shapes:
            est, evidence = _paired_arms(table[table["shape"] == shape], worse, better, metric)
            parts[shape] = decide(f"{name} ({shape})", est, direction="greater",
                                  margin=DOWNSTREAM_MARGIN, evidence=evidence)
        return combine(name, parts, rule="majority")

    lowers = combine("SemAug augmentation lowers MAE and RMSE on unseen shapes", {
        m: per_shape(f"{m}: real only minus SemAug", "real", "swap", m) for m in ("MAE", "RMSE")},
        rule="all")
    return [lowers,
            per_shape("Swapping similar captions helps more than not swapping (MAE)", "density",
                      "swap"),
            per_shape("Unconstrained swaps help less than similar-caption swaps (MAE)",
                      "swap_any", "swap"),
            per_shape("Augmenting without density control helps less than SemAug (MAE)",
                      "no_density", "swap")]


def decide_claims(runs: list[SeedRun]) -> list[Claim]:
    per_seed = runs[0].controlnet_made["source"] != "shipped"
    return [fidelity_claim(fidelity(runs), per_seed, intrinsic_errors(runs)),
            *downstream_claims(downstream(runs, by_shape=True))]


def intrinsic_errors(runs: list[SeedRun]) -> dict:
    """How well each fidelity counter counts *real* held-out scenes of the training shapes: the
    yardstick for its errors on synthetic ones."""
    val = runs[0].sets["val"]                       # one dataset for every seed
    learned = np.concatenate([np.abs(r.val_counts - val.counts) for r in runs])
    classical = np.abs(measures.classical_count(val.images, val.factors["colour"]) - val.counts)
    mean_count = runs[0].sets["train"].counts.mean()
    return {"learned counter MAE on real": float(learned.mean()),
            "classical counter MAE on real": float(classical.mean()),
            "mean-count MAE on real": float(np.abs(val.counts - mean_count).mean()),
            "interval (learned)": mean_ci(learned, unit="image").ci}
