"""Chapter 1's knobs. Kept free of heavy imports: `ai4m list` and the runner read it."""
from __future__ import annotations

from ..params import Param, ParamSpec


def _check_taus(values: list[float]) -> str | None:
    if any(not 0 < v < 1 for v in values):
        return "every quantile level must lie strictly between 0 and 1"
    return None


DIGITS = 1797          # images in scikit-learn's digits
MIN_TEST = 200         # keep at least this many for the test split


def _check_split(values: dict) -> str | None:
    test = DIGITS - values["n_train"] - values["n_val"]
    if test < MIN_TEST:
        return (f"n_train + n_val = {values['n_train'] + values['n_val']} leaves {test} digits for the "
                f"test split; keep it at most {DIGITS - MIN_TEST}")
    if values["apgd_size"] > test:
        return f"apgd_size = {values['apgd_size']} exceeds the {test} test images"
    if values["square_size"] > values["apgd_size"]:
        return (f"square_size = {values['square_size']} exceeds apgd_size = {values['apgd_size']}: "
                "the worst case over attacks needs both on the same images")
    return None


PARAMS = ParamSpec({
    # data
    "n_train": Param(int, 500, min=50, max=1000, help="training images (digits)"),
    "n_val": Param(int, 500, min=50, max=1000, help="validation images that pick the best epoch"),
    "label_noise": Param(float, 0.3, min=0.0, max=0.9, help="share of training labels resampled"),
    # model and schedule
    "width": Param(int, 256, full=1024, min=8, max=8192, help="hidden units per MLP layer"),
    "epochs": Param(int, 100, min=2, max=2000, help="training epochs (lr x0.1 at 50% and 75%)"),
    "batch_size": Param(int, 64, min=8, max=4096),
    "lr": Param(float, 0.1, min=1e-5, max=10.0),
    "weight_decay": Param(float, 5e-4, min=0.0, max=0.1,
                          help="SGD weight decay (5e-4, as in the robust-overfitting literature)"),
    "seeds": Param(int, 1, full=5, min=1, max=64, help="independent runs per recipe"),
    # threat model
    "eps": Param(float, 0.1, min=0.0, max=1.0, help="l-inf budget on pixels in [0, 1]"),
    "train_steps": Param(int, 5, min=1, max=100, help="PGD steps in training (step eps/2)"),
    "eval_steps": Param(int, 10, min=1, max=200, help="PGD steps in evaluation (step eps/4)"),
    "eval_every": Param(int, 5, full=2, min=1, max=100, help="epochs between validation passes"),
    # the regulariser and the controls
    "lam": Param(float, 1.0, min=0.0, max=100.0, help="SRC weight λ of the main recipe"),
    "tau": Param(float, 0.5, min=0.01, max=0.99, help="SRC quantile level τ of the main recipe"),
    "ablation_lambdas": Param(list, [0.1, 1.0], full=[0.1, 0.3, 1.0, 3.0], item=float, min=0.0,
                              help="λ grid, swept for SRC (with every τ) and for the ALP control"),
    "ablation_taus": Param(list, [0.5, 0.8], item=float, check=_check_taus,
                           help="τ values of the PGD-AT + SRC grid"),
    "trades_beta": Param(float, 6.0, min=0.0, max=100.0, help="TRADES trade-off β"),
    "detach_natural": Param(bool, False, help="stop SRC's gradient through the natural logits"),
    # the same comparison on a conv net and generated 32x32 colour images
    "conv_train": Param(int, 128, full=2000, min=32, max=50000, help="generated training images"),
    "conv_eval": Param(int, 64, full=1000, min=32, max=10000,
                       help="generated validation images, and as many test images"),
    "conv_width": Param(int, 4, full=16, min=4, max=256, help="channels of the first conv block"),
    "conv_epochs": Param(int, 0, full=20, min=0, max=500, help="epochs on the conv net (0 skips it)"),
    "conv_batch_size": Param(int, 128, min=8, max=4096),
    "conv_eps": Param(float, 8 / 255, min=0.0, max=1.0, help="l-inf budget for the 32x32 images"),
    # independent evaluation and speed
    "apgd_iter": Param(int, 20, full=50, min=1, max=1000, help="iterations of ART's APGD"),
    "apgd_size": Param(int, 400, full=797, min=10, max=797, help="test images attacked with APGD"),
    "square_queries": Param(int, 300, full=1000, min=10, max=10000,
                            help="queries of ART's Square attack (black box)"),
    "square_size": Param(int, 100, full=200, min=10, max=797,
                         help="first test images attacked with Square, for every recipe"),
    "benchmark": Param(bool, True, help="time our PGD-AT epoch against ART's trainer and a bare loop"),
    "amp": Param(bool, False, help="bf16 autocast in training (GPU)"),
}, joint_checks=[_check_split])
