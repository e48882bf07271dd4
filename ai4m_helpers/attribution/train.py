"""Training the zoo: GPT-2 models of one architecture as one stack, each on its own token stream
with its own learning rate and number of steps (Adam, a linear warm-down per member)."""
from __future__ import annotations

from typing import Sequence

import torch

from ..many_models import ModelStack, PerMemberLR

TIED = {"lm_head.weight": "transformer.wte.weight"}   # GPT-2's output layer is its token embedding


def window_batches(stream: torch.Tensor, batch: int, context: int, generator: torch.Generator):
    """``batch`` random windows of ``context`` tokens, gathered in one indexing op."""
    starts = torch.randint(0, len(stream) - context - 1, (batch, 1), generator=generator)
    return stream[starts + torch.arange(context)]


def lm_stack(models: Sequence) -> ModelStack:
    """The models as one stack. Under vmap, GPT-2's own mask building lets tokens see the future,
    so :func:`causal_lm_loss` passes an explicit causal mask; padding checks are switched off (they
    are data-dependent and cannot run under vmap; the windows hold no padding)."""
    stack = ModelStack(list(models), tied=TIED)
    stack.skeleton.config.pad_token_id = None
    return stack


def causal_lm_loss(stack: ModelStack, ids: torch.Tensor) -> torch.Tensor:
    """Per-member next-token cross-entropy (R,) on windows ids (R, B, T)."""
    _, batch, context = ids.shape
    causal = torch.full((context, context), torch.finfo(torch.float32).min, device=ids.device).triu(1)
    mask = causal[None, None].expand(batch, 1, context, context)
    logits, = stack(ids, attention_mask=mask, use_cache=False, return_dict=False)
    vocab = logits.shape[-1]
    ce = torch.nn.functional.cross_entropy(logits[:, :, :-1].reshape(-1, vocab), ids[:, :, 1:].reshape(-1),
                                           reduction="none")
    return ce.view(stack.size, -1).mean(1)


def warm_down(step: int, steps: torch.Tensor, base_lr: torch.Tensor) -> torch.Tensor:
    """Each member's learning rate at ``step`` (1-based): linear from its base rate to zero over its
    own steps, zero afterwards (a member past its steps stops moving)."""
    return base_lr * (1 - (step - 1) / steps.clamp(min=1)).clamp(min=0) * (step <= steps)


def train_together(models: Sequence, streams: Sequence[torch.Tensor], steps: Sequence[int],
                   lrs: Sequence[float], batch: int, context: int, device, seed: int) -> list:
    """Train the models (one architecture) together; returns them trained, on the CPU."""
    models = [m.to(device).train() for m in models]
    stack = lm_stack(models)
    gen = torch.Generator().manual_seed(seed)
    steps_t = torch.tensor(list(steps), device=device)
    base_lr = torch.tensor(list(lrs), dtype=torch.float32, device=device)
    adam = torch.optim.Adam(stack.parameters(), lr=1.0, betas=(0.9, 0.99), eps=1e-8)
    opt = PerMemberLR(adam, base_lr)
    for t in range(1, max(steps) + 1):
        ids = torch.stack([window_batches(s, batch, context, gen) for s in streams]).to(device)
        opt.factors = warm_down(t, steps_t, base_lr)
        opt.zero_grad()
        causal_lm_loss(stack, ids).sum().backward()
        opt.step()
    return [stack.load_member(model, r).cpu().eval() for r, model in enumerate(models)]


def train_alone(model, stream: torch.Tensor, steps: int, lr: float, batch: int, context: int,
                device, seed: int):
    """Fine-tune one model of any architecture (the pretrained base's descendants) with the
    stack's recipe: Adam, betas (0.9, 0.99), the same linear warm-down, random windows."""
    model = model.to(device).train()
    gen = torch.Generator().manual_seed(seed)
    adam = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-8)
    total = torch.tensor(steps)
    for t in range(1, steps + 1):
        for group in adam.param_groups:
            group["lr"] = float(warm_down(t, total, torch.tensor(lr)))
        ids = window_batches(stream, batch, context, gen).to(device)
        adam.zero_grad()
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        adam.step()
    return model.cpu().eval()
