"""The doubly conditioned generator: a caption-conditioned diffusion UNet (diffusers'
``UNet2DConditionModel``) and a ControlNet (diffusers' ``ControlNetModel``) fed with the density map.

SemAug fine-tunes Stable Diffusion 1.5 with a ControlNet on FSC-147's density maps. Here the
UNet works on 32 x 32 pixels (no autoencoder), the caption enters through cross-attention as one
MiniLM sentence embedding, and the ControlNet is a trainable copy of the UNet's encoder whose
outputs join the frozen UNet through zero-initialised 1 x 1 convolutions, exactly as in
ControlNet: at initialisation it changes nothing. The control image is the density map min-max
normalised to [0, 1], one channel (SemAug replicates it to three channels for SD's RGB control).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

TEXT_DIM = 384           # MiniLM-L6 sentence embeddings
TRAIN_TIMESTEPS = 1000
SCHEDULE = "squaredcos_cap_v2"


def make_unet(size: int = 32, channels=(32, 64, 64), text_dim: int = TEXT_DIM):
    """A small caption-conditioned UNet; cross-attention at the coarsest level only (8 x 8), where
    it is cheap and where a global caption has its effect."""
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor

    levels = len(channels)
    down = ("DownBlock2D",) * (levels - 1) + ("CrossAttnDownBlock2D",)
    up = ("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1)
    unet = UNet2DConditionModel(
        sample_size=size, in_channels=3, out_channels=3, down_block_types=down, up_block_types=up,
        block_out_channels=tuple(channels), layers_per_block=1, cross_attention_dim=text_dim,
        attention_head_dim=16, norm_num_groups=8)
    # Plain attention: on a CPU, the fused kernel's backward is slower for 64 tokens.
    unet.set_attn_processor(AttnProcessor())
    return unet


def make_controlnet(unet):
    """ControlNet from the UNet: its encoder's weights copied, zero convolutions, a one-channel
    control image at full resolution (a single conditioning stage, so no downsampling)."""
    from diffusers import ControlNetModel
    from diffusers.models.attention_processor import AttnProcessor

    net = ControlNetModel.from_unet(unet, conditioning_channels=1,
                                    conditioning_embedding_out_channels=(16,))
    net.set_attn_processor(AttnProcessor())
    return net


def control_image(density: torch.Tensor) -> torch.Tensor:
    """(B, H, W) density -> (B, 1, H, W) min-max normalised to [0, 1], as SemAug feeds ControlNet."""
    lo = density.amin((1, 2), keepdim=True)
    hi = density.amax((1, 2), keepdim=True)
    return ((density - lo) / (hi - lo).clamp_min(1e-8)).unsqueeze(1)


def bf16_autocast(device):
    """bfloat16 autocast where the hardware computes in it natively (CUDA, or a CPU with
    AVX-512 BF16 / AMX), else a no-op: on such CPUs it is about 1.5-2 times faster here, and on
    others it would be slower."""
    device = torch.device(device)
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
    else:
        ok = device.type == "cpu" and torch.backends.mkldnn.is_available() and \
            torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(ok))


def noise_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule=SCHEDULE)


def denoise(unet, x, t, text, controlnet=None, control=None, strength: float = 1.0):
    """Predicted noise; with a ControlNet its residuals (times ``strength``) join the UNet."""
    text = text.unsqueeze(1) if text.dim() == 2 else text
    if controlnet is None:
        return unet(x, t, encoder_hidden_states=text).sample
    down, mid = controlnet(x, t, encoder_hidden_states=text, controlnet_cond=control,
                           conditioning_scale=strength, return_dict=False)
    return unet(x, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                mid_block_additional_residual=mid).sample


def diffusion_loss(unet, scheduler, images, text, controlnet=None, control=None,
                   drop_text: float = 0.1, generator=None):
    """E || eps - eps_theta(x_t, t, c_text[, c_density]) ||^2 on images in [0, 1]. A share
    ``drop_text`` of captions is replaced by the empty (zero) embedding, which classifier-free
    guidance needs."""
    x0 = images * 2 - 1
    b = len(x0)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    t = torch.randint(0, TRAIN_TIMESTEPS, (b,), generator=generator, device=x0.device)
    keep = (torch.rand(b, generator=generator, device=x0.device) >= drop_text).float()
    xt = scheduler.add_noise(x0, noise, t)
    with bf16_autocast(x0.device):
        pred = denoise(unet, xt, t, text * keep[:, None], controlnet, control)
    return F.mse_loss(pred.float(), noise)


def train_model(params, loss_fn, steps: int, lr: float, log_every: int = 0):
    """AdamW on ``params`` for ``steps`` calls of ``loss_fn(step)``; returns the loss curve."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    losses = []
    for step in range(steps):
        loss = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}: loss {np.mean(losses[-log_every:]):.4f}", flush=True)
    return losses


@torch.no_grad()
def sample(unet, text, *, controlnet=None, control=None, steps: int = 20, guidance: float = 2.0,
           strength: float = 1.0, init=None, t0: float = 1.0, generator=None, batch: int = 256):
    """DDIM sampling (eta = 0) with classifier-free guidance; images in [0, 1].

    ``init`` (images in [0, 1]) with ``t0`` < 1 starts from the real image noised to t0 instead of
    pure noise (img2img, as DA-Fusion's real-guidance baseline)."""
    from diffusers import DDIMScheduler

    out = []
    for i in range(0, len(text), batch):
        sl = slice(i, i + batch)
        ddim = DDIMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule=SCHEDULE,
                             clip_sample=True, set_alpha_to_one=False)
        ddim.set_timesteps(steps)
        timesteps = ddim.timesteps[min(int(round((1 - t0) * steps)), steps - 1):]   # >= 1 step
        cond = text[sl]
        shape = (len(cond), 3, unet.config.sample_size, unet.config.sample_size)
        x = torch.randn(shape, generator=generator, device=cond.device)
        if init is not None and t0 < 1:
            x = ddim.add_noise(init[sl] * 2 - 1, x, timesteps[:1].repeat(len(cond)))
        ctrl = None if control is None else torch.cat([control[sl]] * 2)
        both = torch.cat([torch.zeros_like(cond), cond])
        for t in timesteps:
            with bf16_autocast(x.device):
                eps = denoise(unet, torch.cat([x, x]), t, both, controlnet, ctrl, strength)
            uncond, conditioned = eps.float().chunk(2)
            x = ddim.step(uncond + guidance * (conditioned - uncond), t, x).prev_sample
        out.append(((x + 1) / 2).clamp(0, 1))
    return torch.cat(out)
