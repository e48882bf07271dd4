"""The zoo's models: byte-level BPE tokenizers and small GPT-2 language models, built with the
``tokenizers`` and ``transformers`` APIs (no hub is reached)."""
from __future__ import annotations

import torch

EOT = "<|endoftext|>"


def train_tokenizer(text: str, vocab: int):
    """A byte-level BPE tokenizer trained on ``text``, wrapped for ``transformers``."""
    from tokenizers import ByteLevelBPETokenizer, Tokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    pieces = (text[i:i + 4000] for i in range(0, len(text), 4000))
    bpe.train_from_iterator(pieces, vocab_size=vocab, min_frequency=2, special_tokens=[EOT],
                            show_progress=False)
    # The trained tokenizer, as transformers' fast tokenizer takes it (a JSON round trip).
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(bpe.to_str()), bos_token=EOT,
                                   eos_token=EOT, pad_token=EOT, padding_side="left")


def new_model(vocab: int, width: int, layers: int, context: int, seed: int):
    """A freshly initialised GPT-2 language model (no dropout: the models train briefly)."""
    from transformers import AutoModelForCausalLM, GPT2Config

    heads = max(1, width // 16)
    config = GPT2Config(vocab_size=vocab, n_positions=context, n_embd=width, n_layer=layers,
                        n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager")


# -- a real pretrained base -----------------------------------------------------------------------


def load_pretrained(source: str):
    """(model, tokenizer) of a pretrained causal LM in float32: a bundled GGUF copy by its short
    name (``"smollm2"``), else a folder or hub name for ``from_pretrained`` (a reader with
    internet may pass ``"HuggingFaceTB/SmolLM2-135M"``). The GGUF weights are dequantised on
    loading; the model is rebuilt from its configuration without the GGUF marker, so that it can
    be fine-tuned and saved like any other."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .api import quiet_transformers
    from .bundled import BUNDLED, BUNDLED_INSTALL, bundled_file

    quiet_transformers()
    if source in BUNDLED:
        path = bundled_file(source)
        if path is None:
            raise ModuleNotFoundError(f"the bundled model {source!r} is not installed: {BUNDLED_INSTALL}")
        kwargs = {"gguf_file": path.name}
        folder = str(path.parent)
    else:
        kwargs, folder = {}, source
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer
