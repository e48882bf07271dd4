"""Chapter 1's experiment, in the pieces the notebook shows one by one."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from ..data.digits import add_label_noise, load_digits_splits
from .. import claims as C
from ..runtime import replicate_seeds
from ..data.shapes import make_shapes
from ..many_models import ModelStack
from .evaluation import art_attack, expected_calibration_error
from .models import MLP, ConvNet
from .train import History, Recipe, TrainConfig, clean_accuracy, pgd_adversarial

MAIN_AT = "PGD-AT"
MAIN_SRC = "PGD-AT + SRC"
TRADES = "TRADES"
TRADES_SRC = "TRADES + SRC"
ALP_PREFIX = "PGD-AT + ALP"


def alp_name(lam: float) -> str:
    return f"{ALP_PREFIX} λ={lam:g}"


def src_name(lam: float, tau: float) -> str:
    return f"PGD-AT + SRC λ={lam:g} τ={tau:g}"


def lambda_grid(p: dict) -> list[float]:
    """The λ values both regularisers are swept over: the grid and the main λ."""
    return sorted({p["lam"], *p["ablation_lambdas"]})


def recipe_grid(p: dict) -> list[Recipe]:
    """Every recipe the chapter trains, once per seed: the main pair, TRADES with and without SRC,
    the λ×τ grid of SRC and the ALP control on the same λ grid."""
    named = [
        Recipe(label=MAIN_AT),
        Recipe(reg="src", lam=p["lam"], tau=p["tau"], label=MAIN_SRC),
        Recipe(base="trades", beta=p["trades_beta"], label=TRADES),
        Recipe(base="trades", beta=p["trades_beta"], reg="src", lam=p["lam"], tau=p["tau"],
               label=TRADES_SRC),
    ]
    grid = [Recipe(reg="src", lam=lam, tau=tau, label=src_name(lam, tau))
            for lam in lambda_grid(p) for tau in p["ablation_taus"]
            if not (lam == p["lam"] and tau == p["tau"])]  # the main recipe is already there
    alp = [Recipe(reg="alp", lam=lam, label=alp_name(lam)) for lam in lambda_grid(p)]
    recipes = named + grid + alp
    return [dataclasses.replace(r, seed=s) for s in replicate_seeds(p["seed"], p["seeds"]) for r in recipes]


def sweep_names(p: dict) -> dict[str, list[tuple[float, str]]]:
    """(λ, recipe name) along the λ grid: SRC at the main τ, and ALP."""
    src = [(lam, MAIN_SRC if lam == p["lam"] else src_name(lam, p["tau"])) for lam in lambda_grid(p)]
    return {"SRC": src, "ALP": [(lam, alp_name(lam)) for lam in lambda_grid(p)]}


def train_config(p: dict) -> TrainConfig:
    return TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                       weight_decay=p["weight_decay"], eps=p["eps"],
                       train_steps=p["train_steps"], train_step_size=p["eps"] / 2,
                       eval_steps=p["eval_steps"], eval_step_size=p["eps"] / 4,
                       eval_every=p["eval_every"], amp=p["amp"], detach_natural=p["detach_natural"])


def load_data(p: dict, device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Digits splits as tensors on the device; label noise on the training split only."""
    splits = load_digits_splits(p["n_train"], p["n_val"], p["label_noise"], p["seed"])
    return {name: (torch.tensor(s.x, device=device), torch.tensor(s.y, device=device))
            for name, s in splits.items()}


def make_ensemble(p: dict, recipes: list[Recipe], device) -> ModelStack:
    # Initial weights depend on the seed alone: the recipes of one seed start from the same
    # weights, and adding a recipe to the grid changes no other recipe's start.
    return ModelStack.from_seeds(lambda: MLP(64, p["width"], 2, 10), [r.seed for r in recipes], device)


def conv_recipes(p: dict) -> list[Recipe]:
    """The main pair only (PGD-AT with and without SRC), once per seed."""
    pair = [Recipe(label=MAIN_AT), Recipe(reg="src", lam=p["lam"], tau=p["tau"], label=MAIN_SRC)]
    return [dataclasses.replace(r, seed=s) for s in replicate_seeds(p["seed"], p["seeds"]) for r in pair]


def conv_train_config(p: dict) -> TrainConfig:
    return dataclasses.replace(train_config(p), epochs=p["conv_epochs"], batch_size=p["conv_batch_size"],
                               eps=p["conv_eps"], train_step_size=p["conv_eps"] / 2,
                               eval_step_size=p["conv_eps"] / 4, eval_batch=256,
                               eval_every=max(1, p["conv_epochs"] // 10))


def load_shapes(p: dict, device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Generated train / validation / test images; the same label noise as the digits, train only."""
    sizes = {"train": p["conv_train"], "val": p["conv_eval"], "test": p["conv_eval"]}
    out = {}
    for i, (name, n) in enumerate(sizes.items()):
        x, y, _ = make_shapes(n, 32, seed=10_000 * p["seed"] + i)
        if name == "train":
            y, _ = add_label_noise(y, p["label_noise"], 10, np.random.default_rng(p["seed"]))
        out[name] = (torch.tensor(x, device=device), torch.tensor(y, device=device))
    return out


def make_conv_ensemble(p: dict, recipes: list[Recipe], device) -> ModelStack:
    return ModelStack.from_seeds(lambda: ConvNet(3, p["conv_width"], 10), [r.seed for r in recipes], device)


def evaluate_checkpoints(ens: ModelStack, hist: History, x, y, cfg: TrainConfig, seed: int = 0) -> pd.DataFrame:
    """Clean and PGD accuracy and calibration error of every member's best and last checkpoint."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    rows = []
    for which, params in (("best", hist.best_params), ("last", hist.last_params)):
        clean = clean_accuracy(ens, x, y, params)
        x_adv = pgd_adversarial(ens, x, y, cfg.eps, cfg.eval_step_size, cfg.eval_steps, params,
                                cfg.eval_batch, gen)
        with torch.no_grad():
            probs_nat = torch.softmax(ens.forward_shared(x, params).float(), -1).cpu().numpy()
            probs_adv = torch.softmax(ens(x_adv, params).float(), -1).cpu().numpy()
        labels = y.cpu().numpy()
        for r, recipe in enumerate(hist.recipes):
            rows.append({"recipe": recipe.name, "seed": recipe.seed, "member": r, "checkpoint": which,
                         "epoch": int(hist.best_epoch[r]) if which == "best" else cfg.epochs,
                         "clean": float(clean[r]),
                         "confidence_natural": float(probs_nat[r].max(1).mean()),
                         "pgd": float((probs_adv[r].argmax(1) == labels).mean()),
                         "ece_natural": expected_calibration_error(probs_nat[r], labels),
                         "ece_adversarial": expected_calibration_error(probs_adv[r], labels)})
    return pd.DataFrame(rows)


def _checked(out: dict, eps: float) -> dict:
    if out["max_perturbation"] > eps + 1e-5:
        raise RuntimeError(f"an attack left the budget: |δ| = {out['max_perturbation']:.4f} > ε = {eps}")
    return out


GRADIENT_ATTACKS = ("PGD", "APGD-CE", "APGD-DLR")
ART_NAMES = {"APGD-CE": "apgd", "APGD-DLR": "apgd-dlr", "Square": "square"}


def pgd_correct(ens: ModelStack, params, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
                seed: int = 0) -> np.ndarray:
    """Our PGD (``cfg.eval_steps`` steps) against every member, per image: (R, N) booleans."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    x_adv = pgd_adversarial(ens, x, y, cfg.eps, cfg.eval_step_size, cfg.eval_steps, params, cfg.eval_batch, gen)
    with torch.no_grad():
        return (ens(x_adv, params).argmax(-1) == y).cpu().numpy()


def attack_checkpoints(ens: ModelStack, hist: History, x: torch.Tensor, y: torch.Tensor, p: dict,
                       cfg: TrainConfig, device, seed: int = 0) -> pd.DataFrame:
    """Our PGD and ART's APGD with both of AutoAttack's losses on every member's best and last
    checkpoint: one row per (recipe, seed, checkpoint, attack), with the per-image outcome."""
    x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
    rows = []
    for which, params in (("best", hist.best_params), ("last", hist.last_params)):
        pgd = pgd_correct(ens, params, x, y, cfg, seed)
        for r, recipe in enumerate(hist.recipes):
            key = {"recipe": recipe.name, "seed": recipe.seed, "checkpoint": which}
            rows.append({**key, "attack": "PGD", "correct": pgd[r]})
            for attack in ("APGD-CE", "APGD-DLR"):
                out = _checked(art_attack(ens.member(r, params), x_np, y_np, p["eps"], ART_NAMES[attack],
                                          p["apgd_iter"], device=device), p["eps"])
                rows.append({**key, "attack": attack, "correct": out["correct"]})
    return pd.DataFrame(rows)


def square_last(ens: ModelStack, hist: History, x: np.ndarray, y: np.ndarray, p: dict, device,
                image_shape=(1, 8, 8)) -> pd.DataFrame:
    """ART's Square attack on every member's last checkpoint (one row per recipe and seed)."""
    rows = []
    for r, recipe in enumerate(hist.recipes):
        out = _checked(art_attack(ens.member(r, hist.last_params), x, y, p["eps"], "square",
                                  p["square_queries"], image_shape=image_shape, device=device), p["eps"])
        rows.append({"recipe": recipe.name, "seed": recipe.seed, "checkpoint": "last", "attack": "Square",
                     "correct": out["correct"]})
    return pd.DataFrame(rows)


def worst_of(attacks: pd.DataFrame, names=GRADIENT_ATTACKS, column: str = "robust") -> pd.DataFrame:
    """Per (recipe, seed, checkpoint): the share of images that survive every named attack, on
    the first images all of them attacked."""
    rows = []
    chosen = attacks[attacks.attack.isin(names)]
    for (recipe, seed, which), group in chosen.groupby(["recipe", "seed", "checkpoint"], sort=False):
        n = min(len(c) for c in group.correct)
        survived = np.logical_and.reduce([c[:n] for c in group.correct])
        rows.append({"recipe": recipe, "seed": seed, "checkpoint": which, column: float(survived.mean())})
    return pd.DataFrame(rows)


def best_last_table(df: pd.DataFrame, metric: str = "pgd") -> pd.DataFrame:
    """Per recipe: mean and std over seeds of the best and last values and of their gap."""
    wide = df.pivot_table(index=["recipe", "seed"], columns="checkpoint", values=metric).reset_index()
    wide["gap"] = wide["best"] - wide["last"]
    order = list(dict.fromkeys(df["recipe"]))
    table = wide.groupby("recipe")[["best", "last", "gap"]].agg(["mean", "std"]).reindex(order)
    table[("seeds", "n")] = wide.groupby("recipe").size().reindex(order)
    if table[("seeds", "n")].max() == 1:  # a standard deviation of one run is undefined
        table = table.drop(columns="std", level=1)
    return table


def per_seed(df: pd.DataFrame, recipe: str, checkpoint: str, metric: str) -> np.ndarray:
    rows = df[(df.recipe == recipe) & (df.checkpoint == checkpoint)].sort_values("seed")
    return rows[metric].to_numpy()


def per_seed_gap(df: pd.DataFrame, recipe: str, metric: str = "pgd") -> np.ndarray:
    return per_seed(df, recipe, "best", metric) - per_seed(df, recipe, "last", metric)


def mean_std(values) -> dict:
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def flat_records(table: pd.DataFrame) -> list[dict]:
    """A best/last table as JSON-friendly rows: columns ('best', 'mean') become 'best_mean'."""
    flat = table.copy()
    flat.columns = ["_".join(c) if isinstance(c, tuple) else c for c in flat.columns]
    return flat.round(4).reset_index().to_dict("records")


# Margins, fixed before any result: a claimed effect must clear these (accuracy as a fraction).
NO_CHANGE = 0.0
CLEAN_COST_ALLOWED = -0.02   # "a small cost in clean accuracy": at most 2 points
MATCH_TOLERANCE = 0.01       # the ALP control must match SRC's validation clean accuracy within 1 point
ROBUST = "worst of PGD, APGD-CE, APGD-DLR"


def _arms(before: np.ndarray, after: np.ndarray, before_name: str, after_name: str) -> dict:
    return {before_name: float(np.mean(before)), after_name: float(np.mean(after))}


def compare(name: str, before: np.ndarray, after: np.ndarray, names: tuple[str, str], *,
            direction: str, margin: float, unmeasurable: str | None = None, evidence: dict | None = None) -> C.Claim:
    """A claim on the paired per-seed difference ``after - before`` (the recipes of one seed share
    their initial weights and batch order)."""
    return C.decide(name, C.paired(before, after, unit="seed"), direction=direction, margin=margin,
                    evidence={**_arms(before, after, *names), **(evidence or {})}, unmeasurable=unmeasurable)


def decide_claims(robust: pd.DataFrame, df: pd.DataFrame, conv_df: pd.DataFrame | None,
                  matched_alp: str, match_gap: float = 0.0) -> list[C.Claim]:
    """The chapter's claims from its evaluation tables: ``robust`` holds each checkpoint's
    accuracy under the worst of the gradient attacks (column ``robust``), ``df`` the clean
    accuracy and PGD of every checkpoint; ``match_gap`` is how far the ALP control's validation
    clean accuracy lies from SRC's."""
    def gap(recipe):
        return per_seed(robust, recipe, "best", "robust") - per_seed(robust, recipe, "last", "robust")

    unmatched = (f"no ALP λ came within {MATCH_TOLERANCE:g} of SRC's validation clean accuracy "
                 f"(closest {match_gap:.3f} away)" if match_gap > MATCH_TOLERANCE else None)
    claims = [
        compare(f"SRC narrows the gap between best and last robust accuracy ({ROBUST})",
                gap(MAIN_AT), gap(MAIN_SRC), ("gap PGD-AT", "gap PGD-AT + SRC"), direction="less",
                margin=NO_CHANGE),
        compare(f"SRC raises last-checkpoint robust accuracy ({ROBUST})",
                per_seed(robust, MAIN_AT, "last", "robust"), per_seed(robust, MAIN_SRC, "last", "robust"),
                ("robust last PGD-AT", "robust last PGD-AT + SRC"), direction="greater", margin=NO_CHANGE,
                evidence=_arms(per_seed(robust, MAIN_AT, "best", "robust"),
                               per_seed(robust, MAIN_SRC, "best", "robust"),
                               "robust best PGD-AT", "robust best PGD-AT + SRC")),
        compare("SRC costs at most 2 points of clean accuracy",
                per_seed(df, MAIN_AT, "last", "clean"), per_seed(df, MAIN_SRC, "last", "clean"),
                ("clean last PGD-AT", "clean last PGD-AT + SRC"), direction="greater",
                margin=CLEAN_COST_ALLOWED),
        compare(f"SRC is complementary to TRADES (raises its last robust accuracy, {ROBUST})",
                per_seed(robust, TRADES, "last", "robust"), per_seed(robust, TRADES_SRC, "last", "robust"),
                ("robust last TRADES", "robust last TRADES + SRC"), direction="greater", margin=NO_CHANGE),
        compare(f"SRC beats plain logit pairing (ALP) at matched clean accuracy (last, {ROBUST})",
                per_seed(robust, matched_alp, "last", "robust"), per_seed(robust, MAIN_SRC, "last", "robust"),
                (f"robust last {matched_alp}", "robust last PGD-AT + SRC"), direction="greater",
                margin=NO_CHANGE, unmeasurable=unmatched,
                evidence=_arms(per_seed(df, matched_alp, "last", "clean"), per_seed(df, MAIN_SRC, "last", "clean"),
                               f"clean last {matched_alp}", "clean last PGD-AT + SRC")),
    ]
    if conv_df is not None:
        pair = conv_df[conv_df.recipe.isin([MAIN_AT, MAIN_SRC])]
        claims.append(compare(
            "On the conv net too, SRC narrows the best-last robust gap (PGD)",
            per_seed_gap(conv_df, MAIN_AT, "pgd"), per_seed_gap(conv_df, MAIN_SRC, "pgd"),
            ("gap PGD-AT", "gap PGD-AT + SRC"), direction="less", margin=NO_CHANGE,
            unmeasurable="no checkpoint has any robust accuracy" if pair["pgd"].max() == 0 else None))
    return claims


def sweep_points(df: pd.DataFrame, robust: pd.DataFrame) -> pd.DataFrame:
    """Per recipe and seed, the last checkpoint's clean and robust accuracy, side by side."""
    last = robust[robust.checkpoint == "last"][["recipe", "seed", "robust"]]
    return df[df.checkpoint == "last"][["recipe", "seed", "clean"]].merge(last, on=["recipe", "seed"])


def validation_accuracy(hist: History) -> pd.DataFrame:
    """Each member's validation clean and robust (PGD) accuracy at the last epoch."""
    return pd.DataFrame({"recipe": [r.name for r in hist.recipes], "seed": [r.seed for r in hist.recipes],
                         "val_clean": hist.val_clean[-1], "val_robust": hist.val_robust[-1]})


def matched_alp(val: pd.DataFrame) -> tuple[str, float]:
    """The ALP recipe whose mean validation clean accuracy (last epoch) is closest to SRC's, and
    how far it is.

    The rule is fixed before any result and reads only the validation split, so the test split
    that decides the claim plays no part in choosing the control.
    """
    means = val.groupby("recipe")["val_clean"].mean()
    distance = (means[means.index.str.startswith(ALP_PREFIX)] - means[MAIN_SRC]).abs()
    return str(distance.idxmin()), float(distance.min())


def worst_case_table(attacks: pd.DataFrame) -> pd.DataFrame:
    """Last checkpoints, per recipe (mean over seeds): accuracy under each attack, under the
    worst of the gradient attacks and under the worst of all, image by image on the first images
    every attack saw."""
    last = attacks[attacks.checkpoint == "last"]
    n = min(len(c) for c in last.correct)
    last = last.assign(correct=[c[:n] for c in last.correct])
    per_attack = last.assign(accuracy=[c.mean() for c in last.correct]).pivot_table(
        index=["recipe", "seed"], columns="attack", values="accuracy")
    worst = [worst_of(last, GRADIENT_ATTACKS, "worst of gradient attacks"),
             worst_of(last, tuple(last.attack.unique()), "worst of all")]
    table = per_attack.join([w.set_index(["recipe", "seed"]).drop(columns="checkpoint") for w in worst])
    order = list(dict.fromkeys(attacks.recipe))
    columns = [*GRADIENT_ATTACKS, *(c for c in per_attack.columns if c not in GRADIENT_ATTACKS),
               "worst of gradient attacks", "worst of all"]
    return table.groupby("recipe").mean()[columns].reindex(order)
