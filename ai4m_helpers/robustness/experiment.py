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
from .evaluation import expected_calibration_error
from .models import MLP, ConvNet
from .train import History, Recipe, TrainConfig, clean_accuracy, pgd_adversarial

MAIN_AT = "PGD-AT"
MAIN_SRC = "PGD-AT + SRC"
ALP = "PGD-AT + ALP (control)"
TRADES = "TRADES"
TRADES_SRC = "TRADES + SRC"


def recipe_grid(p: dict) -> list[Recipe]:
    """Every recipe the chapter trains, once per seed: the main pair, the controls, and the λ×τ grid."""
    named = [
        Recipe(label=MAIN_AT),
        Recipe(reg="src", lam=p["lam"], tau=p["tau"], label=MAIN_SRC),
        Recipe(reg="alp", lam=p["lam"], label=ALP),
        Recipe(base="trades", beta=p["trades_beta"], label=TRADES),
        Recipe(base="trades", beta=p["trades_beta"], reg="src", lam=p["lam"], tau=p["tau"],
               label=TRADES_SRC),
    ]
    grid = [Recipe(reg="src", lam=lam, tau=tau, label=f"PGD-AT + SRC λ={lam:g} τ={tau:g}")
            for lam in p["ablation_lambdas"] for tau in p["ablation_taus"]
            if not (lam == p["lam"] and tau == p["tau"])]  # the main recipe is already there
    return [dataclasses.replace(r, seed=s) for s in replicate_seeds(p["seed"], p["seeds"]) for r in named + grid]


def train_config(p: dict) -> TrainConfig:
    return TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], eps=p["eps"],
                       train_steps=p["train_steps"], train_step_size=p["eps"] / 2,
                       eval_steps=p["eval_steps"], eval_step_size=p["eps"] / 4,
                       eval_every=p["eval_every"], amp=p["amp"], detach_natural=p["detach_natural"])


def load_data(p: dict, device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Digits splits as tensors on the device; label noise on the training split only."""
    splits = load_digits_splits(p["n_train"], p["n_val"], p["label_noise"], p["seed"])
    return {name: (torch.tensor(s.x, device=device), torch.tensor(s.y, device=device))
            for name, s in splits.items()}


def make_ensemble(p: dict, recipes: list[Recipe], device) -> ModelStack:
    # Each member's initial weights depend on its seed and its position, never on the other members.
    seeds = [1000 * r.seed + i for i, r in enumerate(recipes)]
    return ModelStack.from_seeds(lambda: MLP(64, p["width"], 2, 10), seeds, device)


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
    seeds = [1000 * r.seed + i for i, r in enumerate(recipes)]
    return ModelStack.from_seeds(lambda: ConvNet(3, p["conv_width"], 10), seeds, device)


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
                         "pgd": float((probs_adv[r].argmax(1) == labels).mean()),
                         "ece_natural": expected_calibration_error(probs_nat[r], labels),
                         "ece_adversarial": expected_calibration_error(probs_adv[r], labels)})
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


def _arms(before: np.ndarray, after: np.ndarray, before_name: str, after_name: str) -> dict:
    return {before_name: float(np.mean(before)), after_name: float(np.mean(after))}


def compare(name: str, before: np.ndarray, after: np.ndarray, names: tuple[str, str], *,
            direction: str, margin: float, unmeasurable: str | None = None) -> C.Claim:
    """A claim on the paired per-seed difference ``after - before``."""
    return C.decide(name, C.paired(before, after, unit="seed"), direction=direction, margin=margin,
                    evidence=_arms(before, after, *names), unmeasurable=unmeasurable)


def decide_claims(apgd_df: pd.DataFrame, df: pd.DataFrame, conv_df: pd.DataFrame | None) -> list[C.Claim]:
    """The chapter's claims from its evaluation tables (APGD for the main recipes, PGD otherwise)."""
    claims = [
        compare("SRC narrows the gap between best and last robust accuracy (APGD)",
                per_seed_gap(apgd_df, MAIN_AT, "apgd"), per_seed_gap(apgd_df, MAIN_SRC, "apgd"),
                ("gap PGD-AT", "gap PGD-AT + SRC"), direction="less", margin=NO_CHANGE),
        compare("SRC raises last-checkpoint robust accuracy (APGD)",
                per_seed(apgd_df, MAIN_AT, "last", "apgd"), per_seed(apgd_df, MAIN_SRC, "last", "apgd"),
                ("robust last PGD-AT", "robust last PGD-AT + SRC"), direction="greater", margin=NO_CHANGE),
        compare("SRC costs at most 2 points of clean accuracy",
                per_seed(df, MAIN_AT, "last", "clean"), per_seed(df, MAIN_SRC, "last", "clean"),
                ("clean last PGD-AT", "clean last PGD-AT + SRC"), direction="greater",
                margin=CLEAN_COST_ALLOWED),
        compare("SRC is complementary to TRADES (raises its last robust accuracy, APGD)",
                per_seed(apgd_df, TRADES, "last", "apgd"), per_seed(apgd_df, TRADES_SRC, "last", "apgd"),
                ("robust last TRADES", "robust last TRADES + SRC"), direction="greater", margin=NO_CHANGE),
    ]
    if conv_df is not None:
        pair = conv_df[conv_df.recipe.isin([MAIN_AT, MAIN_SRC])]
        claims.append(compare(
            "On the conv net too, SRC narrows the best-last robust gap (PGD)",
            per_seed_gap(conv_df, MAIN_AT, "pgd"), per_seed_gap(conv_df, MAIN_SRC, "pgd"),
            ("gap PGD-AT", "gap PGD-AT + SRC"), direction="less", margin=NO_CHANGE,
            unmeasurable="no checkpoint has any robust accuracy" if pair["pgd"].max() == 0 else None))
    return claims


def alp_control(df: pd.DataFrame) -> dict:
    """Last-checkpoint robust accuracy (PGD) of the ALP control against SRC: ALP minus SRC per seed."""
    src, alp = per_seed(df, MAIN_SRC, "last", "pgd"), per_seed(df, ALP, "last", "pgd")
    est = C.paired(src, alp, unit="seed")
    return {**_arms(src, alp, "robust last SRC", "robust last ALP"), "ALP - SRC": est.value,
            "ci": list(est.ci) if est.ci else None, "seeds": est.n}
