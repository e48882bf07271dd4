"""Language models behind a text-only interface, and the perplexity of text under a model.

``load_lm`` takes a folder written by ``save_pretrained`` or, for a reader with internet, a hub
name such as ``"distilgpt2"``: the same ``from_pretrained`` call does both. ``LMService`` is what
an auditor sees of a model behind an API: prompts in, generated text out (the prompt stripped),
and a counter of the queries made, since queries to fine-tuned models are the scarce resource.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch


def quiet_transformers() -> None:
    """No progress bars or advisory warnings from transformers in the chapter's output."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_lm(name_or_path, device="cpu"):
    """(model, tokenizer) from a local folder or a hub name; left padding for batched prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(name_or_path)).to(device).eval()
    return model, tokenizer


def context_length(model) -> int | None:
    """The longest sequence the model reads: GPT-2's ``n_positions``, Llama's
    ``max_position_embeddings``."""
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def start_id(tokenizer) -> int:
    """The token a text is scored after: the document separator ``<|endoftext|>`` where the
    vocabulary has one (GPT-2's and SmolLM2's both do), else the tokenizer's bos, else its eos. A
    chat marker such as SmolLM2's eos ``<|im_end|>`` would charge every text's first token for
    following a dialogue turn."""
    vocab = tokenizer.get_vocab()
    if "<|endoftext|>" in vocab:
        return vocab["<|endoftext|>"]
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[str], new_tokens: int, seed: int,
             batch: int = 256) -> list[str]:
    """Sampled continuations (top-k 50, temperature 1: the text-generation defaults), prompt
    stripped. Prompts are cut to the model's context minus the tokens to generate."""
    device = next(model.parameters()).device
    limit = context_length(model)
    room = limit - new_tokens if limit is not None else None
    out = []
    torch.manual_seed(seed)
    for i in range(0, len(prompts), batch):
        enc = tokenizer(list(prompts[i:i + batch]), return_tensors="pt", padding=True)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if room is not None and ids.shape[1] > room:   # keep the prompt's end (left padding)
            ids, mask = ids[:, -room:], mask[:, -room:]
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=True,
                             top_k=50, temperature=1.0, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             pad_token_id=tokenizer.pad_token_id)
        out.extend(tokenizer.batch_decode(gen[:, ids.shape[1]:], skip_special_tokens=True))
    return out


@torch.no_grad()
def token_nll(model, tokenizer, texts: Sequence[str], batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the summed negative log-likelihood (nats) of its tokens after the first, and how
    many tokens that sum covers. Texts longer than the context are cut to it."""
    device = next(model.parameters()).device
    limit = context_length(model)
    sums, counts = [], []
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        for i in range(0, len(texts), batch):
            enc = tokenizer(list(texts[i:i + batch]), return_tensors="pt", padding=True,
                            truncation=limit is not None, max_length=limit)
            ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
            keep = mask[:, 1:].float()
            sums.append((-(logp * keep)).sum(1).cpu())
            counts.append(keep.sum(1).cpu())
    finally:
        tokenizer.padding_side = padding_side
    return torch.cat(sums).numpy().astype(float), torch.cat(counts).numpy().astype(float)


@torch.no_grad()
def char_nll(model, tokenizer, texts: Sequence[str], batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the summed NLL of its characters and how many characters that sum covers, so
    that NLL per character compares models with different tokenizers (a per-token average
    penalises a tokenizer that cuts text into fewer, longer tokens).

    Every token of the text is scored: the text is tokenised alone and the end-of-text id is put
    in front at the id level (a special token merges with nothing). A text longer than the context
    is cut, and only the characters its kept tokens spell are counted."""
    device = next(model.parameters()).device
    limit = context_length(model)
    start = start_id(tokenizer)
    seqs, chars = [], []
    for text in texts:
        ids = [start] + tokenizer(text)["input_ids"]
        if limit is not None and len(ids) > limit:
            ids = ids[:limit]
            chars.append(len(tokenizer.decode(ids[1:])))
        else:
            chars.append(len(text))
        seqs.append(ids)
    sums = []
    for i in range(0, len(seqs), batch):
        chunk = seqs[i:i + batch]
        width = max(len(q) for q in chunk)
        ids = torch.tensor([q + [start] * (width - len(q)) for q in chunk], device=device)
        mask = torch.tensor([[1] * len(q) + [0] * (width - len(q)) for q in chunk], device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
        sums.append((-(logp * mask[:, 1:].float())).sum(1).cpu())
    nll = torch.cat(sums).numpy().astype(float) if sums else np.zeros(0)
    return nll, np.maximum(chars, 1).astype(float)


def perplexity(model, tokenizer, texts: Sequence[str]) -> float:
    """PPL = exp(-(1/T) sum_t log p(r_t | r_<t)) over all tokens of all texts (the paper's
    perplexity heuristic, per token of the model's own tokenizer)."""
    nll, n = token_nll(model, tokenizer, texts)
    return float(np.exp(nll.sum() / max(n.sum(), 1.0)))


@dataclasses.dataclass
class LMService:
    """A model behind an API: generated text only, every prompt counted. The service samples
    with its own random state, which the caller neither sees nor sets."""

    model: object
    tokenizer: object
    new_tokens: int
    seed: int = 0
    queries: int = 0
    calls: int = 0

    @classmethod
    def open(cls, name_or_path, new_tokens: int, seed: int = 0, device="cpu") -> "LMService":
        model, tokenizer = load_lm(name_or_path, device)
        return cls(model, tokenizer, new_tokens, seed)

    def query(self, prompts: Sequence[str]) -> list[str]:
        self.queries += len(prompts)
        self.calls += 1
        return generate(self.model, self.tokenizer, prompts, self.new_tokens,
                        seed=self.seed * 7919 + self.calls)
