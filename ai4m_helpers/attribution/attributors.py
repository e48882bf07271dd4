"""One-vs-rest attributors, the perplexity heuristic, majority votes and their metrics.

For each base model b a binary classifier h_b decides whether a response "carries b's
characteristics". What h_b is trained on is the attributor's *knowledge level*:

- ``K1``: responses of the base models only (b's own against the others'); needs no query to
  any fine-tuned model;
- ``K2``: plus responses of the labelled zoo of fine-tuned models (a descendant of b counts as b);
- ``K1 pair`` / ``K2 pair``: the same knowledge, but h_b sees a *pair* of responses to the same
  prompt, b's and the candidate's (two samples of b, or b and a descendant, are positives).

A fine-tuned model f is attributed by majority vote over prompts: score_b(f) is the share of f's
responses that h_b accepts (mean probability breaks ties), and f goes to argmax_b score_b(f).
"""
from __future__ import annotations

import os

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from .features import pair_features, stack_rows

LEVELS = ("K1", "K1 pair", "K2", "K2 pair")


def _fit(x, y, seed: int) -> LogisticRegression:
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed)
    return clf.fit(x, y)


def training_set(level: str, b: int, feats: dict) -> tuple[object, np.ndarray]:
    """Inputs and labels of h_b at ``level``. ``feats`` holds per-model feature blocks of
    responses to the training prompts: ``base1``/``base2`` (two samples per base, lists indexed
    by base) and ``zoo`` (list), with ``zoo_base`` the zoo's known parents."""
    n_bases = len(feats["base1"])
    blocks, labels = [], []

    def add(x, positive: bool):
        blocks.append(x)
        labels.append(np.full(x.shape[0], int(positive)))

    pair = level.endswith("pair")
    for k in range(n_bases):
        if pair:
            other = feats["base2"][b] if k == b else feats["base1"][k]
            add(pair_features(feats["base1"][b], other), k == b)
        else:
            add(feats["base1"][k], k == b)
            add(feats["base2"][k], k == b)
    if level.startswith("K2"):
        for x, parent in zip(feats["zoo"], feats["zoo_base"]):
            add(pair_features(feats["base1"][b], x) if pair else x, parent == b)
    return stack_rows(blocks), np.concatenate(labels)


def train_and_score(level: str, feats: dict, query_base: list, query_test: list, seed: int) -> np.ndarray:
    """Train h_b for every base at ``level`` and score every test model's responses to the query
    prompts. Returns probabilities of shape (n_test, n_bases, n_prompts)."""
    from joblib import Parallel, delayed

    def one_base(b: int) -> np.ndarray:
        clf = _fit(*training_set(level, b, feats), seed)
        return np.stack([clf.predict_proba(pair_features(query_base[b], x) if level.endswith("pair") else x)[:, 1]
                         for x in query_test])

    # One classifier per base, fitted side by side (threads: the work is in BLAS, outside the GIL).
    per_base = Parallel(n_jobs=min(len(feats["base1"]), os.cpu_count() or 1), prefer="threads")(
        delayed(one_base)(b) for b in range(len(feats["base1"])))
    return np.stack(per_base, axis=1)


def vote(probs: np.ndarray, prompts=None) -> np.ndarray:
    """Majority vote over (a subset of) prompts: (n_test, n_bases, n_prompts) -> base index."""
    p = probs if prompts is None else probs[..., prompts]
    score = (p > 0.5).mean(-1) + 1e-3 * p.mean(-1)
    return score.argmax(-1)


def perplexity_attribution(nll: np.ndarray, chars: np.ndarray, prompts=None) -> np.ndarray:
    """The perplexity heuristic: f goes to the base under which its responses are least
    surprising, per character (bases have different tokenizers, so per-token perplexities are not
    comparable). nll, chars: (n_test, n_bases, n_prompts) summed NLL and character counts."""
    if prompts is not None:
        nll, chars = nll[..., prompts], chars[..., prompts]
    return (nll.sum(-1) / np.maximum(chars.sum(-1), 1)).argmin(-1)


def per_base_metrics(probs: np.ndarray, truth: np.ndarray, predicted: np.ndarray, names) -> list[dict]:
    """For each base b: ROC-AUC, precision and recall of h_b on single responses (positives: the
    responses of b's descendants), and precision/recall of the model-level attribution."""
    rows = []
    for b, name in enumerate(names):
        y = np.repeat(truth == b, probs.shape[-1])
        s = probs[:, b].reshape(-1)
        accepted = s > 0.5
        auc = roc_auc_score(y, s) if 0 < y.sum() < len(y) else float("nan")
        rows.append({
            "base": name,
            "response AUC": auc,
            "response precision": (accepted & y).sum() / max(accepted.sum(), 1),
            "response recall": (accepted & y).sum() / max(y.sum(), 1),
            "model precision": ((predicted == b) & (truth == b)).sum() / max((predicted == b).sum(), 1),
            "model recall": ((predicted == b) & (truth == b)).sum() / max((truth == b).sum(), 1),
        })
    return rows


def disagreement(nll_per_char: np.ndarray) -> np.ndarray:
    """Prompt ranking from base models alone (costs no fine-tuned query): how much worse the other
    bases explain base b's response to a prompt than b itself, averaged over b.
    nll_per_char: (n_bases scoring, n_bases responding, n_prompts)."""
    n = nll_per_char.shape[0]
    own = nll_per_char[np.arange(n), np.arange(n)]                # (n_bases, n_prompts)
    others = (nll_per_char.sum(0) - own) / (n - 1)
    return (others - own).mean(0)
