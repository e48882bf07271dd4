"""Chapter 3's knobs. Kept free of heavy imports: `ai4m list` and the runner read it.

SemAug's own settings are the defaults where they apply: 5 synthetic images per real image,
DDIM with 20 steps, guidance 2.0, swap probability 0.5 above a similarity of 0.7, img2img from
t0 = 0.5 for the baseline without density control. The smoke profile keeps the pipeline whole
but cuts every size (one seed, 32 synthetic images per arm, 150 counter steps): its downstream
claims cannot be decided, and it says so."""
from __future__ import annotations

import json
import pathlib

from ..params import Param, ParamSpec

CONTROLNET_MANIFEST = pathlib.Path(__file__).resolve().parent / "assets" / "controlnet.json"


def shipped_controlnet() -> dict | None:
    """What the shipped ControlNet was fine-tuned on (None when it is absent)."""
    if not CONTROLNET_MANIFEST.exists():
        return None
    return json.loads(CONTROLNET_MANIFEST.read_text())


def _enough_sources(values: dict) -> str | None:
    if values["n_sources"] > values["n_train"]:
        return (f"n_sources ({values['n_sources']}) cannot exceed the annotated training "
                f"images n_train ({values['n_train']})")
    return None


def _shipped_fits(values: dict) -> str | None:
    if values["controlnet"] != "shipped":
        return None
    made = shipped_controlnet()
    if made is None:
        return "no ControlNet ships with these helpers; set controlnet='train'"
    if (values["data_seed"], values["n_train"]) != (made["data_seed"], made["n_train"]):
        return (f"the shipped ControlNet was fine-tuned on data_seed {made['data_seed']} with "
                f"n_train {made['n_train']}; set controlnet='train' to fine-tune one on this data")
    return None


PARAMS = ParamSpec({
    "seeds": Param(int, 1, full=5, min=1, max=20,
                   help="replicates: ControlNet (when trained here), generation, counters"),
    "data_seed": Param(int, 0, min=0, max=2**32 - 1,
                       help="draws the annotated dataset, fixed across replicates as FSC-147 is"),
    "controlnet": Param(str, "shipped", full="train", choices=("shipped", "train"),
                        help="shipped: the ControlNet fine-tuned on this dataset that ships with "
                             "the helpers (as SemAug releases its checkpoint); train: fine-tune "
                             "one per replicate here"),
    "n_train": Param(int, 200, full=1000, min=20, max=100000,
                     help="annotated real training scenes (points and boxes), training shapes"),
    "n_val": Param(int, 100, full=300, min=10, max=100000,
                   help="held-out real scenes of the training shapes (the counters' yardstick)"),
    "n_test": Param(int, 300, full=900, min=10, max=100000,
                    help="test scenes of the three unseen shapes"),
    "controlnet_steps": Param(int, 150, full=1000, min=1, max=1000000,
                              help="ControlNet fine-tuning steps on the density maps"),
    "controlnet_batch": Param(int, 16, full=64, min=1, max=4096, help="ControlNet batch size"),
    "controlnet_lr": Param(float, 3e-3, min=1e-6, max=1.0, help="ControlNet learning rate (AdamW)"),
    "n_sources": Param(int, 32, full=1000, min=1, max=100000,
                       help="real images that synthetic images are generated from (only they "
                            "can be replaced by a synthetic version in the counters' batches)"),
    "per_image": Param(int, 1, full=5, min=1, max=100, help="synthetic images per source image"),
    "ddim_steps": Param(int, 10, full=20, min=1, max=1000, help="DDIM sampling steps (eta = 0)"),
    "guidance": Param(float, 2.0, min=0.0, max=50.0, help="classifier-free guidance scale"),
    "swap_probability": Param(float, 0.5, min=0.0, max=1.0,
                              help="probability that a synthetic image gets a swapped caption"),
    "swap_threshold": Param(float, 0.7, min=-1.0, max=1.0,
                            help="caption similarity (MiniLM cosine) above which a swap is allowed"),
    "img2img_t0": Param(float, 0.5, min=0.05, max=1.0,
                        help="noise level the baseline without density control starts from"),
    "counter_steps": Param(int, 150, full=3000, min=1, max=1000000,
                           help="steps of every counter (the same for every arm)"),
    "counter_batch": Param(int, 4, full=32, min=1, max=4096, help="counter batch size"),
    "counter_lr": Param(float, 3e-3, min=1e-6, max=1.0, help="counter learning rate (AdamW)"),
    "synthetic_share": Param(float, 0.5, min=0.0, max=1.0,
                             help="probability that a training example is replaced by a synthetic one"),
}, joint_checks=[_enough_sources, _shipped_fits])
