"""Splitting a direction in activation space into concept vectors (O'Mahony et al. 2023).

For one direction (a neuron, an SVD direction, any vector) of global-average-pooled activations:
take the top-N images along it; choose k by Ward hierarchical clustering cut at a distance
threshold; run k-means with that k; drop images too far from their centroid and clusters left too
small; each remaining cluster's normalised mean activation is a concept vector.

The paper's threshold is the absolute distance 15, tuned for Inception-v3's Mixed_7b. For any other
model the scale differs. :func:`model_scale` gives a scale-free replacement: one cut for the whole
model, a fraction of the median (over its neurons) of the largest Ward merge distance. Like the
paper's 15 it is the same for every direction, so a direction whose top images are spread widely
splits more than one whose top images are tight. (A per-direction relative cut, ``relative=True``,
is also available; it removes exactly that difference.) The same number also bounds the squared
distance to a centroid, as the paper's 15 does for both.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import KMeans


@dataclasses.dataclass
class SplitConfig:
    top_n: int = 100               # images along the direction that are clustered
    threshold: float = 15.0        # Ward cut: a distance, or a fraction of the largest merge (relative)
    relative: bool = False
    min_cluster: int = 5           # clusters with fewer images after outlier removal are dropped
    ranking: str = "dot"           # "dot" (the paper's projection) or "cosine"
    seed: int = 0


@dataclasses.dataclass
class Split:
    direction: np.ndarray
    top: np.ndarray                # indices of the top images
    k: int                         # clusters chosen by the Ward cut
    vectors: np.ndarray            # (n_concepts, C) unit concept vectors
    members: list                  # indices (into the data) of each kept cluster's images
    cut: float                     # the Ward distance actually used
    labels: np.ndarray             # k-means cluster of each top image (before outlier removal)

    @property
    def n_concepts(self) -> int:
        return len(self.vectors)


def dead_units(acts: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Units whose activation barely varies (dead ReLUs): they have no top images to speak of."""
    return acts.std(0) < tol


def scores(acts: np.ndarray, direction: np.ndarray, ranking: str = "dot") -> np.ndarray:
    """Projection a·v (the paper's ranking) or cosine(a, v), per image."""
    proj = acts @ direction
    if ranking == "dot":
        return proj
    if ranking == "cosine":
        return proj / (np.linalg.norm(acts, axis=1) * np.linalg.norm(direction) + 1e-12)
    raise ValueError(f"ranking must be 'dot' or 'cosine', got {ranking!r}")


def top_images(acts: np.ndarray, direction: np.ndarray, n: int, ranking: str = "dot") -> np.ndarray:
    return np.argsort(-scores(acts, direction, ranking), kind="stable")[:n]


def ward_cut(vectors: np.ndarray, threshold: float, relative: bool) -> tuple[int, float]:
    """Number of clusters below the cut, and the cut distance."""
    tree = linkage(vectors, method="ward", metric="euclidean") if len(vectors) > 1 else None
    return _cut_tree(tree, len(vectors), threshold, relative)


def _cut_tree(tree, n: int, threshold: float, relative: bool) -> tuple[int, float]:
    """Clusters below the cut of a Ward tree over n points (None when n < 2), and the cut."""
    if tree is None:
        return n, 0.0
    cut = threshold * tree[:, 2].max() if relative else threshold
    return int(fcluster(tree, t=cut, criterion="distance").max()), float(cut)


def split_direction(acts: np.ndarray, direction: np.ndarray, cfg: SplitConfig) -> Split:
    """The whole pipeline for one direction on activations ``acts`` (N, C)."""
    return split_at_cuts(acts, direction, [cfg])[0]


def split_at_cuts(acts: np.ndarray, direction: np.ndarray, cfgs: list[SplitConfig]) -> list[Split]:
    """The pipeline for one direction at several cuts (configurations that differ only in their
    threshold): the top images and their Ward tree are computed once, k-means once per k."""
    top = top_images(acts, direction, cfgs[0].top_n, cfgs[0].ranking)
    x = acts[top]
    tree = linkage(x, method="ward", metric="euclidean") if len(x) > 1 else None
    fits: dict[int, KMeans] = {}
    out = []
    for cfg in cfgs:
        k, cut = _cut_tree(tree, len(x), cfg.threshold, cfg.relative)
        if k not in fits:
            fits[k] = KMeans(n_clusters=k, n_init=5, max_iter=1000, random_state=cfg.seed).fit(x)
        out.append(_concepts(x, top, fits[k], k, cut, cfg.min_cluster, direction))
    return out


def _concepts(x, top, km: KMeans, k: int, cut: float, min_cluster: int, direction) -> Split:
    """Outlier removal and normalised cluster means (steps 5 and 6 of the method)."""
    # The paper bounds the *squared* distance to a centroid by the same number as the Ward cut.
    sq_dist = ((x - km.cluster_centers_[km.labels_]) ** 2).sum(1)
    keep = sq_dist < cut if cut > 0 else np.ones(len(x), bool)
    vectors, members = [], []
    for c in range(k):
        idx = np.flatnonzero((km.labels_ == c) & keep)
        if len(idx) < min_cluster:
            continue
        mean = x[idx].mean(0)
        norm = np.linalg.norm(mean)
        if norm > 0:
            vectors.append(mean / norm)
            members.append(top[idx])
    vectors = np.array(vectors) if vectors else np.zeros((0, x.shape[1]))
    return Split(direction, top, k, vectors, members, cut, km.labels_)


def silhouette(acts: np.ndarray, split: Split) -> float:
    """Mean silhouette of a direction's clustering of its top images (0 for one cluster)."""
    from sklearn.metrics import silhouette_score

    k = len(np.unique(split.labels))
    if k < 2 or k >= len(split.top):
        return 0.0
    return float(silhouette_score(acts[split.top], split.labels))


def null_silhouette(x: np.ndarray, k: int, seed: int = 0) -> float:
    """The silhouette k-means reaches with k clusters on structureless data: a Gaussian sample
    with the mean and covariance of ``x`` (k-means splits anything, so a clustering counts only by
    how far it beats this)."""
    from sklearn.metrics import silhouette_score

    if k < 2 or k >= len(x):
        return 0.0
    rng = np.random.default_rng(seed)
    sample = rng.multivariate_normal(x.mean(0), np.cov(x, rowvar=False), size=len(x), method="eigh")
    labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(sample)
    return float(silhouette_score(sample, labels)) if len(np.unique(labels)) > 1 else 0.0


def excess_silhouette(acts: np.ndarray, split: Split, seed: int = 0, nulls: dict | None = None) -> float:
    """Silhouette of the split minus that of the Gaussian null with the same k; 0 for one cluster.
    Negative when the clusters are no better separated than in data with no clusters at all.
    ``nulls`` caches the null by k for splits of one direction (same top images)."""
    k = len(np.unique(split.labels))
    if k < 2:
        return 0.0
    nulls = {} if nulls is None else nulls
    if k not in nulls:
        nulls[k] = null_silhouette(acts[split.top], k, seed)
    return silhouette(acts, split) - nulls[k]


def largest_merge(acts: np.ndarray, direction: np.ndarray, top_n: int, ranking: str = "dot") -> float:
    """The largest Ward merge distance among a direction's top images."""
    x = acts[top_images(acts, direction, top_n, ranking)]
    return float(linkage(x, method="ward", metric="euclidean")[:, 2].max()) if len(x) > 1 else 0.0


def model_scale(acts: np.ndarray, top_n: int, ranking: str = "dot", units=None) -> float:
    """Median over (live) neurons of their largest Ward merge: the unit of a model-wide cut."""
    units = range(acts.shape[1]) if units is None else units
    eye = np.eye(acts.shape[1])
    return float(np.median([largest_merge(acts, eye[u], top_n, ranking) for u in units]))


def svd_directions(acts: np.ndarray) -> np.ndarray:
    """Right singular vectors of the (uncentred) activations, each signed so that images project
    positively on average: (C, C), one direction per row."""
    _, _, vt = np.linalg.svd(acts, full_matrices=False)
    signs = np.sign((acts @ vt.T).mean(0))
    signs[signs == 0] = 1
    return vt * signs[:, None]


def neuron_directions(n_units: int) -> np.ndarray:
    return np.eye(n_units)
