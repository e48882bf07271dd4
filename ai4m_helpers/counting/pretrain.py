"""Pretrain the caption-only UNet that ships with the chapter (the stand-in for Stable Diffusion),
and fine-tune the ControlNet that ships beside it (as SemAug releases its fine-tuned checkpoint).

SemAug starts from Stable Diffusion, which has seen billions of captioned images but no density
maps. Its stand-in here is trained on a pool of captioned scenes *without* point annotations (a
caption costs nothing next to a dot per object), of the training shapes only: the test shapes stay
unseen by every model of the chapter. Training takes about 20 minutes on two CPU cores, so the
weights ship in ``assets/`` with a manifest of how they were made; rerun with

    python -m ai4m_helpers.counting.pretrain base --steps 3000

to rebuild them (the same seed gives the same weights on the same machine and library versions).

The ControlNet is fine-tuned on the chapter's annotated training scenes (``data_seed`` 0, 200
scenes: the smoke profile's dataset) exactly as the chapter does it with ``controlnet='train'``,
only for longer than a smoke run can afford (about 13 minutes on two CPU cores):

    python -m ai4m_helpers.counting.pretrain controlnet --steps 3000

A third file is a measuring instrument, not part of any compared method: the attribute classifier
that judges synthetic images, trained on the captioned pool (``pretrain judge``; two minutes).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ..data.counting import all_captions, make_scenes
from ..runtime import seed_everything
from . import generator as gen
from . import text
from .splits import POOL_SEED, TRAIN_SHAPES

WEIGHTS = text.ASSETS / "base_unet.safetensors"
MANIFEST = text.ASSETS / "base_unet.json"
JUDGE_WEIGHTS = text.ASSETS / "attribute_judge.safetensors"
JUDGE_MANIFEST = text.ASSETS / "attribute_judge.json"
CONTROLNET_WEIGHTS = text.ASSETS / "controlnet.safetensors"
CONTROLNET_MANIFEST = text.ASSETS / "controlnet.json"
CHANNELS = (16, 32, 64)


def pretrain(steps: int = 3000, pool: int = 6000, batch: int = 48, lr: float = 2e-3,
             ema_decay: float = 0.995, seed: int = 0, log_every: int = 100):
    """Train the caption-conditioned UNet on ``pool`` unannotated scenes; returns the EMA model."""
    seed_everything(seed)
    scenes = make_scenes(pool, seed=POOL_SEED, shapes=TRAIN_SHAPES)
    images = torch.from_numpy(scenes.images)
    emb = torch.from_numpy(text.embed(scenes.captions))
    unet = gen.make_unet(channels=CHANNELS)
    ema = torch.optim.swa_utils.AveragedModel(
        unet, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema_decay))
    scheduler = gen.noise_scheduler()
    g = torch.Generator().manual_seed(seed)

    def loss(step):
        if step:
            ema.update_parameters(unet)
        idx = torch.randint(0, pool, (batch,), generator=g)
        return gen.diffusion_loss(unet, scheduler, images[idx], emb[idx], generator=g)

    start = time.perf_counter()
    losses = gen.train_model(list(unet.parameters()), loss, steps, lr, log_every)
    return ema.module, {"steps": steps, "pool": pool, "batch": batch, "lr": lr,
                        "ema_decay": ema_decay, "seed": seed, "pool_seed": POOL_SEED,
                        "shapes": list(TRAIN_SHAPES), "channels": list(CHANNELS),
                        "final_loss": float(np.mean(losses[-100:])),
                        "train_s": round(time.perf_counter() - start, 1),
                        "torch": torch.__version__}


def finetune_controlnet(data_seed: int = 0, n_train: int = 200, steps: int = 3000,
                        batch: int = 32, lr: float = 3e-3, seed: int = 0):
    """The shipped ControlNet: fine-tuned on the chapter's training scenes of ``data_seed``."""
    from .augment import train_controlnet
    from .data import chapter_sets
    from .experiment import caption_table

    seed_everything(seed)
    real = chapter_sets(data_seed, n_train, 1, 1)["train"]   # as the chapter draws it
    captions, ids, _ = caption_table(real)
    emb = torch.from_numpy(text.embed(captions))[torch.from_numpy(ids)]
    start = time.perf_counter()
    net, losses = train_controlnet(load_base(), real, emb, steps=steps, batch=batch, lr=lr,
                                   seed=seed)
    curve = np.asarray(losses).reshape(-1, max(1, steps // 100)).mean(1) if steps >= 100 else losses
    return net, {"data_seed": data_seed, "n_train": n_train, "steps": steps, "batch": batch,
                 "lr": lr, "seed": seed, "train_s": round(time.perf_counter() - start, 1),
                 "loss_curve": [round(float(v), 5) for v in curve], "torch": torch.__version__}


def train_judge(steps: int = 4000, pool: int = 6000, batch: int = 64, lr: float = 3e-3,
                seed: int = 0):
    """The attribute classifier that judges synthetic images (the chapter's analogue of the
    pretrained Inception network behind FID): trained on the captioned pool (captions name the
    attributes; no dots needed), checked on 1,000 further pool scenes."""
    from .train import attribute_predictions, train_attribute_net
    from .measures import attribute_accuracy

    seed_everything(seed)
    scenes = make_scenes(pool + 1000, seed=POOL_SEED, shapes=TRAIN_SHAPES)
    train_part, held = scenes.subset(np.arange(pool)), scenes.subset(np.arange(pool, pool + 1000))
    start = time.perf_counter()
    net = train_attribute_net(train_part, steps=steps, batch=batch, lr=lr, seed=seed)
    predicted, _ = attribute_predictions(net, held.images)
    accuracy = {k: round(v, 4) for k, v in attribute_accuracy(predicted, held.factors).items()}
    return net, {"steps": steps, "pool": pool, "batch": batch, "lr": lr, "seed": seed,
                 "held_out_accuracy": accuracy, "train_s": round(time.perf_counter() - start, 1),
                 "torch": torch.__version__}


def load_judge(device="cpu"):
    """The shipped attribute classifier (eval mode) and its manifest."""
    from safetensors.torch import load_file

    from .train import AttributeNet

    if not JUDGE_WEIGHTS.exists():
        raise FileNotFoundError(f"{JUDGE_WEIGHTS} is missing; rebuild it with "
                                "`python -m ai4m_helpers.counting.pretrain judge`")
    net = AttributeNet()
    net.load_state_dict({k: v.float() for k, v in load_file(str(JUDGE_WEIGHTS)).items()})
    return net.to(device).eval().requires_grad_(False), json.loads(JUDGE_MANIFEST.read_text())


def save(model, manifest: dict, weights=WEIGHTS, manifest_path=MANIFEST) -> None:
    from safetensors.torch import save_file

    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(weights))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def load_base(device="cpu"):
    """The shipped caption-only UNet (float32, frozen, in eval mode)."""
    from safetensors.torch import load_file

    if not WEIGHTS.exists():
        raise FileNotFoundError(f"{WEIGHTS} is missing; rebuild it with "
                                "`python -m ai4m_helpers.counting.pretrain`")
    channels = json.loads(MANIFEST.read_text())["channels"]
    unet = gen.make_unet(channels=tuple(channels))
    unet.load_state_dict({k: v.float() for k, v in load_file(str(WEIGHTS)).items()})
    return unet.to(device).eval().requires_grad_(False)


def load_controlnet(base, device="cpu"):
    """The shipped ControlNet for ``base`` (float32, frozen, in eval mode) and its manifest."""
    from safetensors.torch import load_file

    if not CONTROLNET_WEIGHTS.exists():
        raise FileNotFoundError(f"{CONTROLNET_WEIGHTS} is missing; rebuild it with "
                                "`python -m ai4m_helpers.counting.pretrain controlnet`")
    net = gen.make_controlnet(base.cpu())
    net.load_state_dict({k: v.float() for k, v in load_file(str(CONTROLNET_WEIGHTS)).items()})
    base.to(device)
    manifest = json.loads(CONTROLNET_MANIFEST.read_text())
    return net.to(device).eval().requires_grad_(False), manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("base", "controlnet", "judge"))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--pool", type=int, default=6000, help="base: captioned scenes")
    parser.add_argument("--n-train", type=int, default=200, help="controlnet: annotated scenes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "base":
        text.write_table(all_captions())
        model, manifest = pretrain(args.steps, args.pool, seed=args.seed)
        save(model, manifest)
    elif args.what == "judge":
        model, manifest = train_judge(args.steps, args.pool, seed=args.seed)
        save(model, manifest, JUDGE_WEIGHTS, JUDGE_MANIFEST)
    else:
        model, manifest = finetune_controlnet(0, args.n_train, args.steps, seed=args.seed)
        save(model, manifest, CONTROLNET_WEIGHTS, CONTROLNET_MANIFEST)
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
