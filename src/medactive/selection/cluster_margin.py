"""Cluster-margin: the top-scored candidates, clustered once, then round-robin over clusters.

Citovsky et al. cluster the pool once with hierarchical agglomerative clustering (average
linkage), take the ``k_m = m · k`` samples of lowest margin, and fill the batch by visiting
the clusters of those candidates smallest first, one random member per cluster and visit,
cycling until ``k`` are picked: small clusters (rare regions) are always represented and the
batch holds few near-duplicates. Here the score is any score (higher = more informative) and
the clustering is of the candidates only, redone each query, so memory stays bounded: average
linkage on ``N`` candidates needs the ``N (N - 1) / 2`` condensed distances (``N`` = 5,000:
100 MB), never an ``n × n`` matrix over the pool.

Example:
    >>> import numpy as np
    >>> labels = np.array([0, 0, 0, 1, 2, 2])  # cluster sizes 3, 1, 2
    >>> round_robin(labels, 5, rng=0, order=np.arange(6)).tolist()
    [3, 4, 0, 5, 1]

References:
    Citovsky, DeSalvo, Gentile, Karydas, Rajagopalan, Rostamizadeh and Kumar, "Batch active
    learning at scale", NeurIPS 2021.
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget
from medactive.selection.stochastic import check_scores

LINKAGES = ("average", "single", "complete", "ward")
#: default cap on the clustered candidates (condensed distances: 8 N^2 / 2 bytes)
MAX_CANDIDATES = 5000


def round_robin(labels: np.ndarray, k: int, *, rng: RandomLike,
                order: np.ndarray | None = None) -> np.ndarray:
    """``k`` positions visiting the clusters smallest first, one member per visit.

    Args:
        labels: ``[n]`` cluster of each candidate.
        k: ``1 <= k <= n``.
        rng: seed or Generator (draws the member of a cluster at each visit).
        order: ``[n]`` optional priority inside clusters (positions, best first), replacing
            the random draw.

    Returns:
        ``[k]`` int64 positions. Clusters of equal size are visited in label order.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    k = check_budget(k, labels.size)
    rng = check_random_state(rng)
    names, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    if order is not None:
        rank = np.empty(labels.size, np.int64)
        rank[np.asarray(order, np.int64)] = np.arange(labels.size)
    queues = []
    for c in np.lexsort((np.arange(names.size), sizes)):
        members = np.flatnonzero(inverse == c)
        if order is None:
            members = rng.permutation(members)
        else:
            members = members[np.argsort(rank[members], kind="stable")]
        queues.append(members.tolist())
    picks: list[int] = []
    depth = 0
    while len(picks) < k:
        for queue in queues:
            if depth < len(queue):
                picks.append(queue[depth])
                if len(picks) == k:
                    break
        depth += 1
    return np.asarray(picks, dtype=np.int64)


def agglomerative_labels(X: np.ndarray, n_clusters: int, *, linkage: str = "average",
                         ) -> np.ndarray:
    """``[N]`` cluster labels of ``X [N, d]`` by scipy's hierarchical clustering, cut at
    ``n_clusters`` (``1 <= n_clusters <= N``)."""
    from scipy.cluster.hierarchy import fcluster
    from scipy.cluster.hierarchy import linkage as hierarchy

    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    n_clusters = check_budget(n_clusters, X.shape[0], name="n_clusters")
    if X.shape[0] == 1:
        return np.zeros(1, dtype=np.int64)
    tree = hierarchy(X, method=linkage, metric="euclidean")
    return fcluster(tree, t=n_clusters, criterion="maxclust").astype(np.int64) - 1


def cluster_margin(X: np.ndarray, scores: np.ndarray, k: int, *, rng: RandomLike,
                   candidates_per_pick: int = 10, n_clusters: int | None = None,
                   max_candidates: int = MAX_CANDIDATES, linkage: str = "average",
                   ) -> np.ndarray:
    """Cluster-margin selection of ``k`` among ``n`` scored candidates.

    Args:
        X: ``[n, d]`` embeddings of the candidates (only the top-scored rows are read, so
            a lazy :class:`~medactive.predictions.FieldRows` fetches just those).
        scores: ``[n]`` finite scores (higher = more informative; cluster-margin's own is the
            margin score).
        k: ``1 <= k <= n``.
        rng: seed or Generator (ties of the scores, the member of each cluster visit).
        candidates_per_pick: ``m``; the ``N = min(n, max(k, min(m k, max_candidates)))``
            top-scored samples are clustered (the paper: ``k_m = 10 k``).
        n_clusters: clusters of the candidates (default: ``k``, so one visit each when they
            are about equal; fewer clusters visit the small ones again).
        max_candidates: cap on ``N`` (memory ``4 N^2`` bytes), unless ``k`` is larger.
        linkage: scipy linkage method (the paper: ``"average"``).

    Returns:
        ``[k]`` int64 positions into ``scores``, in round-robin order.
    """
    from medactive.selection.topk import top_candidates

    scores = check_scores(scores)
    k = check_budget(k, scores.size)
    rng = check_random_state(rng)
    cand = top_candidates(scores, X, k, candidates_per_pick=candidates_per_pick,
                          max_candidates=max_candidates, rng=rng, name="cluster")
    n_cand = cand.size
    n_clusters = k if n_clusters is None else check_budget(n_clusters, n_cand,
                                                           name="n_clusters")
    labels = agglomerative_labels(np.asarray(X[cand]), min(n_clusters, n_cand), linkage=linkage)
    return cand[round_robin(labels, k, rng=rng)]
