"""Clustering of embeddings: HDBSCAN (scikit-learn), with average-linkage agglomerative clustering on cosine
distance as the fallback for small batches where density estimates are meaningless. Clusters are ranked by size,
represented by the members closest to the centroid and labelled with class-based TF-IDF keywords.

Texts without a letter or digit (empty, whitespace, punctuation, emoji, symbols) are noise: they carry no topic, and
a transformer encoder still gives them a vector (of its special tokens), so together they would form a cluster.

HDBSCAN never returns its whole data set as one cluster unless told to (`allow_single_cluster`), so a batch on one
topic came back as noise, or split into arbitrary sub-clusters; told to, it also lumps a batch of unrelated texts
into one. So a single cluster is allowed, and kept only when it is as tight as average linkage would make it
(mean pairwise cosine distance within `distance_threshold`); otherwise the clusters HDBSCAN finds without it stand.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Callable

import numpy as np

from cx_nlp.models.api import ClusterResult


def cluster(
    texts: list[str],
    embeddings: np.ndarray,
    *,
    min_cluster_size: int = 3,
    max_clusters: int = 0,
    representatives: int = 3,
    terms: Callable[[str], list[str]],
    distance_threshold: float = 0.55,
) -> tuple[list[ClusterResult], list[int]]:
    n = len(texts)
    if embeddings.shape[0] != n:
        raise ValueError(f"{n} texts but {embeddings.shape[0]} embeddings")
    min_cluster_size = max(2, int(min_cluster_size))
    if n < min_cluster_size:
        return [], list(range(n))
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # no letters or digits (empty, emoji, punctuation) or a zero vector: noise
    valid = np.flatnonzero((norms[:, 0] > 0) & np.array([has_content(t) for t in texts], dtype=bool))
    norms[norms == 0] = 1.0
    x = x / norms
    labels = np.full(n, -1, dtype=np.int64)
    if len(valid) >= min_cluster_size:
        xv = x[valid]
        labels[valid] = (
            _agglomerative(xv, distance_threshold)
            if len(valid) < HDBSCAN_MIN_TEXTS
            else _hdbscan(xv, min_cluster_size, distance_threshold)
        )
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        if label >= 0:
            groups.setdefault(int(label), []).append(i)
    kept = [m for m in groups.values() if len(m) >= min_cluster_size]
    kept.sort(key=lambda m: (-len(m), m[0]))
    if max_clusters > 0:
        kept = kept[:max_clusters]
    in_cluster = {i for m in kept for i in m}
    noise = [i for i in range(n) if i not in in_cluster]
    doc_terms = [set(terms(t)) for t in texts]
    df_all = Counter(t for d in doc_terms for t in d)
    results = []
    for members in kept:
        centroid = x[members].mean(axis=0)
        sims = x[members] @ centroid
        order = [members[j] for j in np.argsort(-sims, kind="stable")]
        df = Counter(t for i in members for t in doc_terms[i])
        scored = [
            (term, (count / len(members)) * math.log(1.0 + n / df_all[term]))
            for term, count in df.items()
            if count >= 2 or len(members) <= 2
        ]
        scored.sort(key=lambda kv: (-kv[1], kv[0]))
        top = scored[:5]
        best = top[0][1] if top else 1.0
        results.append(
            ClusterResult(
                members=sorted(members),
                representatives=order[: max(1, representatives)],
                keywords=[(term, round(score / best, 4)) for term, score in top],
            )
        )
    return results, noise


HDBSCAN_MIN_TEXTS = 40  # fewer valid texts: agglomerative clustering (density estimates need more points)


def has_content(text: str) -> bool:
    """Whether `text` has a letter or a digit (any script); emoji, symbols, punctuation and spaces do not count."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def _agglomerative(x: np.ndarray, threshold: float) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    # on unit vectors euclidean distance = sqrt(2 * cosine distance)
    model = AgglomerativeClustering(
        n_clusters=None, metric="euclidean", linkage="average", distance_threshold=math.sqrt(2.0 * threshold)
    )
    return np.asarray(model.fit_predict(x))


def _hdbscan(x: np.ndarray, min_cluster_size: int, threshold: float) -> np.ndarray:
    """HDBSCAN labels of unit vectors `x`; one cluster of (nearly) all of them only where it is tight (see the module
    docstring). With `allow_single_cluster` HDBSCAN returns the same clusters as without it unless it picks the
    root, so the second run happens only for a single cluster that is too loose."""
    labels = _hdbscan_labels(x, min_cluster_size, single=True)
    found = labels[labels >= 0]
    if len(found) == 0 or int(found.max()) > 0:  # no cluster, or several: as without allow_single_cluster
        return labels
    if _mean_cosine_distance(x[labels == 0]) <= threshold:
        return labels
    return _hdbscan_labels(x, min_cluster_size, single=False)


def _hdbscan_labels(x: np.ndarray, min_cluster_size: int, *, single: bool) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    model = HDBSCAN(
        min_cluster_size=min_cluster_size,
        min_samples=max(1, min_cluster_size // 2),
        metric="euclidean",
        allow_single_cluster=single,
        copy=True,
    )
    return np.asarray(model.fit_predict(x))


def _mean_cosine_distance(x: np.ndarray) -> float:
    """Mean cosine distance over the distinct pairs of unit vectors `x` (the average linkage of the set), in O(n d)."""
    n = len(x)
    if n < 2:
        return 0.0
    total = x.sum(axis=0)
    return float(1.0 - (total @ total - n) / (n * (n - 1)))
