"""ProbCover: greedy maximum coverage of a δ-ball graph, δ chosen by ball purity.

With few labels, ProbCover picks the points whose δ-balls cover the most of the pool not yet
covered. Its graph has an edge ``x → y`` iff ``|x - y| < δ`` (self-loops included). The
greedy removes every edge into a covered point (the balls of labeled points are covered
before the first pick) and then, at each step, takes the candidate with the most remaining
out-edges (ties: the lowest position, as ``argmax`` in the authors' code).

δ is chosen as in the paper: cluster all points with k-means into ``n_clusters`` groups
(the paper: the number of classes) to get pseudo-labels; a ball ``B_δ(x)`` is *pure* if every
point in it has ``x``'s pseudo-label; ``purity(δ)`` is the fraction of pure balls; δ is the
largest value with ``purity(δ) >= alpha`` (paper: α = 0.95). Since ``B_δ(x)`` is pure iff
``δ <= r_x``, the distance from ``x`` to its nearest point of another pseudo-label,
``purity(δ) = mean(r >= δ)`` and the largest such δ is an order statistic of ``r``: no grid
search is needed.

Scale: the authors build the exact ball graph from all pairwise distances on a GPU. Here the
graph keeps, for each point, only its ``max_neighbors`` nearest neighbours closer than δ
(:func:`medactive.selection.neighbors.knn_graph`: exact FAISS, HNSW or pynndescent), so memory
is ``O(n · max_neighbors)``. Two approximations follow, both only in dense regions: a ball
holds at most ``max_neighbors + 1`` points, and ``r_x`` is taken as infinite when the
``max_neighbors`` nearest neighbours all share ``x``'s pseudo-label.

Differences from the authors' code: when every point is covered, their ``argmax`` of an
all-zero degree vector re-selects position 0; here the remaining picks are drawn uniformly at
random (from ``rng``) among the candidates left, with gain 0.

Example:
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.5], [1.0], [5.0], [5.4]])
    >>> pos, gains = probcover(X, 2, delta=0.6, normalize=False)
    >>> pos.tolist(), gains.tolist()  # 1 covers {0, 1, 2}; then 3 covers {3, 4}
    ([1, 3], [3.0, 2.0])

References:
    Yehuda, Dekel, Hacohen and Weinshall, "Active learning through a covering lens",
    NeurIPS 2022.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget, check_pool_embeddings
from medactive.selection import clustering
from medactive.selection.facility_location import l2_normalise
from medactive.selection.neighbors import knn_graph

#: default cap on the neighbours kept per node of the ball graph
MAX_NEIGHBORS = 50
#: default purity threshold α (the paper's)
ALPHA = 0.95
#: default number of k-means pseudo-label clusters when the class count is not given
N_CLUSTERS = 10


def purity_delta(knn_idx: np.ndarray, knn_dist: np.ndarray, pseudo_labels: np.ndarray,
                 alpha: float = ALPHA) -> float:
    """The largest δ whose balls are pure for at least a fraction ``alpha`` of the points.

    Args:
        knn_idx: ``[n, k]`` nearest other points of each point, nearest first.
        knn_dist: ``[n, k]`` their distances.
        pseudo_labels: ``[n]`` cluster of each point.
        alpha: purity threshold in ``(0, 1]``.

    Returns:
        δ; balls are open (``|x - y| < δ``). ``inf`` capped to the largest kNN distance when
        more than a fraction ``alpha`` of the points see no other pseudo-label among their
        ``k`` neighbours.
    """
    labels = np.asarray(pseudo_labels)
    n = labels.size
    other = labels[knn_idx] != labels[:, None]
    other &= knn_idx >= 0
    first = np.where(other.any(axis=1), other.argmax(axis=1), -1)
    r = np.where(first >= 0, knn_dist[np.arange(n), np.maximum(first, 0)], np.inf)
    # purity(δ) = #{r >= δ} / n >= alpha  <=>  δ <= the ceil(alpha n)-th largest r
    need = max(1, math.ceil(alpha * n - 1e-9))
    delta = float(np.sort(r)[n - need])
    if math.isinf(delta):
        delta = float(np.nextafter(np.max(knn_dist[knn_idx >= 0]), np.inf))
    return delta


def ball_graph(knn_idx: np.ndarray, knn_dist: np.ndarray, delta: float) -> sp.csr_matrix:
    """``[n, n]`` boolean CSR: ``x → y`` for ``y == x`` or a listed neighbour with ``d < δ``."""
    n, k = knn_idx.shape
    keep = (knn_dist < delta) & (knn_idx >= 0)
    rows = np.concatenate([np.arange(n), np.repeat(np.arange(n), k)[keep.ravel()]])
    cols = np.concatenate([np.arange(n), knn_idx.ravel()[keep.ravel()]])
    G = sp.csr_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n))
    G.sum_duplicates()
    G.data[:] = 1
    return G


def max_coverage_greedy(G: sp.csr_matrix, budget: int, *, candidates: np.ndarray,
                        covered_by: np.ndarray | None = None, rng: RandomLike = None,
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy maximum coverage on the out-neighbourhoods of ``G`` (ProbCover's greedy).

    Args:
        G: ``[n, n]`` sparse adjacency, ``G[x, y] != 0`` iff ``x`` covers ``y``.
        budget: number of picks, ``1 <= budget <= len(candidates)``.
        candidates: ``[m]`` distinct positions that may be picked.
        covered_by: ``[l]`` positions whose out-neighbours start covered (labeled points).
        rng: seed or Generator for the picks made once everything is covered.

    Returns:
        ``(positions [budget] int64, gains [budget] float64)``: picks in order and the number
        of points each newly covered.
    """
    G = sp.csr_matrix(G)
    n = G.shape[0]
    cands = np.unique(np.asarray(candidates, dtype=np.int64))
    budget = check_budget(budget, cands.size)
    rng = check_random_state(rng)
    incoming = G.tocsc()  # column y lists the points covering y
    covered = np.zeros(n, dtype=bool)
    degree = np.diff(G.indptr).astype(np.int64)  # out-edges into uncovered points

    def cover(points: np.ndarray) -> int:
        new = points[~covered[points]]
        covered[new] = True
        if new.size:  # every point covering a newly covered one loses that out-edge
            degree[:] -= np.bincount(incoming[:, new].indices, minlength=n)
        return int(new.size)

    if covered_by is not None and np.asarray(covered_by).size:
        starts = G[np.asarray(covered_by, dtype=np.int64)]
        cover(np.unique(starts.indices))
    is_cand = np.zeros(n, dtype=bool)
    is_cand[cands] = True
    picks = np.empty(budget, dtype=np.int64)
    gains = np.empty(budget, dtype=np.float64)
    for b in range(budget):
        score = np.where(is_cand, degree, -1)
        c = int(np.argmax(score))
        if score[c] <= 0:  # everything reachable is covered: the rest at random
            rest = np.flatnonzero(is_cand)
            picks[b:] = rng.choice(rest, size=budget - b, replace=False)
            gains[b:] = 0.0
            break
        is_cand[c] = False
        picks[b] = c
        gains[b] = cover(G.indices[G.indptr[c]:G.indptr[c + 1]])
    return picks, gains


def probcover(X: np.ndarray, budget: int, *, X_labeled: np.ndarray | None = None,
              rng: RandomLike = None, delta: float | None = None, alpha: float = ALPHA,
              n_clusters: int = N_CLUSTERS, max_neighbors: int = MAX_NEIGHBORS,
              normalize: bool = True, kmeans_backend: str = "sklearn",
              knn_backend: str = "faiss") -> tuple[np.ndarray, np.ndarray]:
    """Pick ``budget`` rows of ``X`` maximising the δ-ball coverage of ``X ∪ X_labeled``.

    Args:
        X: ``[n, d]`` candidate (unlabeled) vectors.
        budget: number of picks, ``1 <= budget <= n``.
        X_labeled: ``[m, d]`` labeled vectors (their balls start covered; never picked).
        rng: seed or Generator (k-means, pynndescent, and the picks once all is covered).
        delta: ball radius; ``None`` = chosen by purity (:func:`purity_delta`).
        alpha: purity threshold for δ (paper: 0.95).
        n_clusters: k-means pseudo-label clusters for the purity (paper: the number of
            classes), capped at the number of points.
        max_neighbors: neighbours kept per node of the ball graph.
        normalize: L2-normalise the vectors first (the authors' self-supervised features are
            unit-norm, and δ is on that scale).
        kmeans_backend: ``"sklearn"`` or ``"faiss"``.
        knn_backend: ``"faiss"`` or ``"pynndescent"``.

    Returns:
        ``(positions [budget] into X, gains [budget])``: picks in order and how many points
        each newly covered.
    """
    X, X_labeled, budget = check_pool_embeddings(X, X_labeled, budget)
    X_all = np.concatenate([X, X_labeled])
    if normalize:
        X_all = l2_normalise(X_all, copy=False)  # X_all is our own concatenation
    return probcover_stacked(X_all, X.shape[0], budget, rng=rng, delta=delta, alpha=alpha,
                             n_clusters=n_clusters, max_neighbors=max_neighbors,
                             kmeans_backend=kmeans_backend, knn_backend=knn_backend)


def probcover_stacked(X_all: np.ndarray, n_candidates: int, budget: int, *,
                      rng: RandomLike = None, delta: float | None = None,
                      alpha: float = ALPHA, n_clusters: int = N_CLUSTERS,
                      max_neighbors: int = MAX_NEIGHBORS, kmeans_backend: str = "sklearn",
                      knn_backend: str = "faiss") -> tuple[np.ndarray, np.ndarray]:
    """:func:`probcover` on one stacked array, with no copy or normalisation of it.

    Args:
        X_all: ``[n, d]`` float32 or float16 vectors, the first ``n_candidates`` rows
            unlabeled (candidates), the rest labeled; already normalised if wanted. float16
            stays float16: the kNN graph keeps 16-bit codes and k-means fits a float32
            sample (:func:`medactive.selection.clustering.kmeans`).
        n_candidates: ``n_u``, ``budget <= n_u <= n``.
        budget, rng, delta, alpha, n_clusters, max_neighbors, kmeans_backend, knn_backend:
            as in :func:`probcover`.

    Returns:
        ``(positions [budget] into the first n_u rows, gains [budget])``.
    """
    if np.asarray(X_all).dtype != np.float16:  # float16 storage is kept (issue 16)
        X_all = np.asarray(X_all, dtype=np.float32)
    if X_all.ndim != 2 or not 0 <= n_candidates <= X_all.shape[0]:
        raise ValueError(f"X_all must be [n, d] with n >= n_candidates = {n_candidates}, "
                         f"got shape {X_all.shape}")
    budget = check_budget(budget, n_candidates)
    rng = check_random_state(rng)
    n = X_all.shape[0]
    k = min(int(max_neighbors), n - 1)
    if k < 1:
        return np.zeros(1, dtype=np.int64), np.ones(1)
    idx, dist = knn_graph(X_all, k, backend=knn_backend, rng=rng)
    if delta is None:
        _, pseudo = clustering.kmeans(X_all, min(int(n_clusters), n), rng=rng,
                                      backend=kmeans_backend)
        delta = purity_delta(idx, dist, pseudo, alpha)
    G = ball_graph(idx, dist, float(delta))
    return max_coverage_greedy(G, budget, candidates=np.arange(n_candidates),
                               covered_by=np.arange(n_candidates, n), rng=rng)
