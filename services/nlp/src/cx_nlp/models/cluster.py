"""Clustering of embeddings: HDBSCAN (scikit-learn), with average-linkage agglomerative clustering on cosine
distance as the fallback for small batches where density estimates are meaningless. Clusters are ranked by size,
represented by the members closest to the centroid and labelled with class-based TF-IDF keywords."""

from __future__ import annotations

import math
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
    valid = np.flatnonzero(norms[:, 0] > 0)  # empty texts embed to zero vectors: noise
    norms[norms == 0] = 1.0
    x = x / norms
    labels = np.full(n, -1, dtype=np.int64)
    if len(valid) >= min_cluster_size:
        xv = x[valid]
        labels[valid] = _agglomerative(xv, distance_threshold) if len(valid) < 40 else _hdbscan(xv, min_cluster_size)
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


def _agglomerative(x: np.ndarray, threshold: float) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    # on unit vectors euclidean distance = sqrt(2 * cosine distance); zero vectors (empty texts) stay valid
    model = AgglomerativeClustering(
        n_clusters=None, metric="euclidean", linkage="average", distance_threshold=math.sqrt(2.0 * threshold)
    )
    return np.asarray(model.fit_predict(x))


def _hdbscan(x: np.ndarray, min_cluster_size: int) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    model = HDBSCAN(
        min_cluster_size=min_cluster_size, min_samples=max(1, min_cluster_size // 2), metric="euclidean", copy=True
    )
    return np.asarray(model.fit_predict(x))
