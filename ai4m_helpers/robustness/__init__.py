"""Adversarial robustness: PGD, adversarial-training objectives (PGD-AT, TRADES), the SRC
regulariser and its ALP control, batched training with best/last tracking, calibration, and
evaluation with ART."""
from .attacks import pgd_linf, project_linf
from .objectives import alp_loss, pinball, self_residual, src_loss, trades_kl
from .params import PARAMS
from .train import History, Recipe, TrainConfig, train_recipes

__all__ = ["PARAMS", "History", "Recipe", "TrainConfig", "alp_loss", "pgd_linf", "pinball",
           "project_linf", "self_residual", "src_loss", "trades_kl", "train_recipes"]
