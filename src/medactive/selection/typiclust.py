"""TypiClust's cluster-covering selection: the most typical point of the least covered cluster.

All points (labeled and unlabeled) are clustered into ``K = min(n_labeled + budget,
max_clusters)`` groups with seeded k-means (:func:`medactive.selection.clustering.kmeans`).
Each of the ``budget`` picks then takes, among clusters with at least ``min_cluster_size``
members and an unlabeled point left, the one holding the fewest labeled-or-already-picked
points (ties: the largest cluster, then the lowest cluster id), and in it the unlabeled point
of highest typicality (:func:`medactive.scoring.representativeness.typicality`), computed from
the ``min(n_neighbors, size - 1)`` nearest neighbours inside the cluster
(:func:`medactive.selection.neighbors.knn_graph`). When no cluster qualifies, the remaining
unlabeled points are taken by typicality over all points.

Differences from the authors' code (``avihu111/TypiClust``, ``deep-al/pycls/al/typiclust.py``,
checked for issue 12). medactive keeps its own rules: the pinned selections of the region
tests (``tests/tasks/segmentation/test_regions.py``, ``tests/project/...``) rest on them, and
they follow the paper's text where the code departs from it (item 3).

1. Eligible clusters: the code keeps clusters of *more than* 5 points (``size > 5``); here
   ``size >= min_cluster_size`` (default 5), so a cluster of exactly 5 is eligible here only.
   ``min_cluster_size=6`` gives the code's rule.
2. Neighbours: the code uses ``k = min(20, ⌊m / 2⌋)``, ``m`` the cluster's points not yet
   labeled or picked, and recomputes the typicality among those ``m`` points before every
   pick. Here ``k = min(n_neighbors, size - 1)`` over all the cluster's points (labeled ones
   included, as part of the density), computed once per cluster. Picks never change a
   cluster's members, so the two differ in ``k`` and in which points count as neighbours:
   for a cluster of 25 points the code uses ``k = 12`` at its first pick, here ``k = 20``.
3. Distance: the code averages FAISS ``IndexFlatL2`` outputs, which are *squared* L2
   distances, ``1 / (mean d² + 1e-5)``; here the paper's ``1 / (mean d + 1e-12)`` (Eq. 2).
4. Cluster order: the code sorts the eligible clusters once by (labeled count, -size) and
   visits them round-robin; here each pick re-chooses the cluster with the fewest labeled or
   picked points (ties: largest, then lowest id). Without labels (cold start) both give the
   same order (up to ties in size); with labels spread unevenly they can differ (a cluster with 0 labels gets a
   second pick here before a cluster with 2 labels gets its first).
5. Exhaustion: the code has no fallback (no eligible cluster, or an eligible cluster with no
   unlabeled point left, fails); here such clusters are skipped and, when none is left, the
   remaining picks go by typicality over all points.
6. k-means: the code uses full ``KMeans`` up to 50 clusters and ``MiniBatchKMeans`` (batch
   5,000) above; here always :func:`~medactive.selection.clustering.kmeans` (MiniBatchKMeans,
   batch 4,096, or FAISS).

Scale (issue 16), two documented approximations that leave small pools untouched:

- k-means is fitted on a uniform sample of ``kmeans_samples_per_cluster · K`` points (default
  256 · K, FAISS's rule: 128,000 for K = 500) and every point is then assigned to its nearest
  centre in one pass. Pools of at most that many points are clustered exactly as before.
- Typicality is exact (kNN among all the cluster's members) for clusters of at most
  ``C = typicality_candidates`` members (default 256). In a larger cluster of ``m`` members,
  every member's typicality is first estimated from its ``round(k C / m)`` nearest among a
  random sample of ``C`` members (the ``k``-th neighbour among ``m`` points is about the
  ``k C / m``-th among ``C`` of them), and only the ``C`` members estimated most typical are
  scored exactly (against all members, FAISS flat index); the next ``C`` are scored when those
  have all been picked. A pick's score is always its exact typicality; the approximation is
  that the most typical member may be missed when the estimate ranks it below ``C`` others.
  The cost is at most ``2 C · n · d`` instead of ``Σ m² · d`` (at 10^6 points in 500 k-means
  clusters of very uneven size, most of the time: the largest held about 5% of the points).
  ``tests/selection/test_typiclust_scale.py`` checks on fixtures (clusters of 400, a dense
  blob off the cluster's mean) that the picks' typicality is within 2% of the best free
  member's.
- ``embedding_dtype`` ``"float16"`` (or ``"auto"`` from 250,000 rows,
  :func:`medactive.selection.neighbors.resolve_dtype`) stores the stacked embeddings in 16
  bits; rows are read back as float32 in blocks (the k-means sample, the assignment pass, each
  cluster's members), so distances are computed in float32 on float16-rounded values.

With ``typicality_candidates=None, kmeans_samples_per_cluster=None`` and float32 the selection
is the pre-issue-16 one.

Device (issue 16 part 4, ``--selection-device cuda``): given a torch tensor (float32), the kNN
distances and typicalities are computed on its device (exact brute force in row blocks,
:mod:`medactive.selection.neighbors`; ``knn_backend`` is not used there), and only each
scored cluster's ``[m]`` typicalities come back for the picking loop on the host. The k-means
step (MiniBatchKMeans / FAISS) stays on the host: the stacked embeddings are copied to the
host once for it. Random draws (k-means seed, the large clusters' samples) are the host
Generator's, so on pools without near-ties the picks are the numpy path's.

Example:
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    >>> pos, scores = typiclust(X, 2, rng=0, min_cluster_size=3)
    >>> sorted(pos.tolist())  # the middle point of each group of three
    [1, 4]
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget, check_pool_embeddings
from medactive.errors import ConfigError
from medactive.scoring._arrays import is_device_array, namespace, positions_like, to_host
from medactive.scoring.representativeness import typicality
from medactive.selection import clustering, neighbors


def typiclust(X: np.ndarray, budget: int, *, X_labeled: np.ndarray | None = None,
              rng: RandomLike = None, n_neighbors: int = 20, min_cluster_size: int = 5,
              max_clusters: int | None = 500, kmeans_backend: str = "sklearn",
              knn_backend: str = "faiss", typicality_candidates: int | None = 256,
              kmeans_samples_per_cluster: int | None = 256,
              ) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``budget`` rows of ``X`` covering the clusters of ``X ∪ X_labeled`` by typicality.

    Args:
        X: ``[n, d]`` candidate (unlabeled) vectors.
        budget: number of picks, ``1 <= budget <= n``.
        X_labeled: ``[m, d]`` labeled vectors (clustered with ``X``, never picked).
        rng: seed or Generator; the k-means seed (and pynndescent's) is drawn from it.
        n_neighbors: ``k`` of the typicality (paper: 20), capped at the cluster size - 1.
        min_cluster_size: clusters with fewer members are never chosen (default 5; the
            authors' code keeps clusters of more than 5, i.e. ``min_cluster_size=6``).
        max_clusters: cap on ``K`` (paper: 500); ``None`` = no cap.
        kmeans_backend: ``"sklearn"`` or ``"faiss"`` (:func:`~medactive.selection.clustering.kmeans`).
        knn_backend: ``"faiss"`` or ``"pynndescent"`` (:func:`~medactive.selection.neighbors.knn_graph`).
        typicality_candidates: in a cluster with more members, only this many (nearest its
            mean) are scored at a time (exact FAISS flat search); ``None`` = score all.
        kmeans_samples_per_cluster: fit k-means on at most this many points per cluster, then
            assign all points; ``None`` = fit on all points.

    Returns:
        ``(positions, scores)``: ``[budget]`` distinct positions into ``X`` in selection order,
        and each pick's typicality (within its cluster; over all points for fallback picks; 0
        for a point with no neighbour to measure). Ties go to the lowest position.

    References:
        Hacohen, Dekel and Weinshall, "Active learning on a budget: opposite strategies suit
        high and low budgets", ICML 2022.
    """
    if is_device_array(X):  # stacked on the device (module docstring, "Device")
        xp = namespace(X)
        X = X if X.dtype == xp.float32 else xp.astype(X, xp.float32)
        if X.ndim != 2:
            raise ValueError(f"X must be [n, d], got shape {tuple(X.shape)}")
        budget = check_budget(budget, X.shape[0])
        if X_labeled is not None and (X_labeled.ndim != 2 or X_labeled.shape[1] != X.shape[1]):
            raise ValueError(f"X_labeled must be [m, {X.shape[1]}], got shape "
                             f"{tuple(X_labeled.shape)}")
        X_all = X if X_labeled is None else xp.concat([X, xp.astype(X_labeled, xp.float32)])
    else:
        X, X_labeled, budget = check_pool_embeddings(X, X_labeled, budget)
        X_all = None
    options = {"n_neighbors": n_neighbors, "min_cluster_size": min_cluster_size,
               "max_clusters": max_clusters, "kmeans_backend": kmeans_backend,
               "knn_backend": knn_backend, "typicality_candidates": typicality_candidates,
               "kmeans_samples_per_cluster": kmeans_samples_per_cluster}
    check_options(**options)
    if X_all is None:
        X_all = np.concatenate([X, X_labeled])
    return typiclust_stacked(X_all, X.shape[0], budget, rng=rng, **options)


def check_options(*, n_neighbors: int, min_cluster_size: int, max_clusters: int | None,
                  kmeans_backend: str, knn_backend: str, typicality_candidates: int | None = 256,
                  kmeans_samples_per_cluster: int | None = 256) -> None:
    """Raise :class:`~medactive.errors.ConfigError` for an invalid TypiClust option."""
    for name, value in (("n_neighbors", n_neighbors), ("min_cluster_size", min_cluster_size),
                        ("max_clusters", max_clusters),
                        ("typicality_candidates", typicality_candidates),
                        ("kmeans_samples_per_cluster", kmeans_samples_per_cluster)):
        if name != "n_neighbors" and name != "min_cluster_size" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"typiclust: {name} must be an integer >= 1, got {value!r}")
    if kmeans_backend not in clustering.BACKENDS:
        raise ConfigError(f"typiclust: kmeans_backend must be one of {clustering.BACKENDS}, "
                          f"got {kmeans_backend!r}")
    if knn_backend not in neighbors.BACKENDS:
        raise ConfigError(f"typiclust: knn_backend must be one of {neighbors.BACKENDS}, "
                          f"got {knn_backend!r}")


def typiclust_stacked(X_all: np.ndarray, n_candidates: int, budget: int, *,
                      rng: RandomLike = None, n_neighbors: int = 20, min_cluster_size: int = 5,
                      max_clusters: int | None = 500, kmeans_backend: str = "sklearn",
                      knn_backend: str = "faiss", typicality_candidates: int | None = 256,
                      kmeans_samples_per_cluster: int | None = 256,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`typiclust` on one stacked array, with no copy of it.

    Args:
        X_all: ``[n, d]`` float32 or float16 vectors, the first ``n_candidates`` rows
            unlabeled (candidates), the rest labeled; or a device tensor (module docstring,
            "Device": copied to the host once for k-means, kNN on the device).
        n_candidates: ``n_u``, ``budget <= n_u <= n``.
        budget, rng and the options: as in :func:`typiclust`.

    Returns:
        ``(positions [budget] into the first n_u rows, scores [budget])``.
    """
    X_device = None  # the rows the kNN reads, on the selection device
    if is_device_array(X_all):
        xp = namespace(X_all)
        X_device = X_all if X_all.dtype == xp.float32 else xp.astype(X_all, xp.float32)
        X_all = to_host(X_device)  # the one host copy, for k-means
    elif np.asarray(X_all).dtype != np.float16:
        X_all = np.asarray(X_all, dtype=np.float32)
    if X_all.ndim != 2 or not 0 <= n_candidates <= X_all.shape[0]:
        raise ValueError(f"X_all must be [n, d] with n >= n_candidates = {n_candidates}, "
                         f"got shape {X_all.shape}")
    check_options(n_neighbors=n_neighbors, min_cluster_size=min_cluster_size,
                  max_clusters=max_clusters, kmeans_backend=kmeans_backend,
                  knn_backend=knn_backend, typicality_candidates=typicality_candidates,
                  kmeans_samples_per_cluster=kmeans_samples_per_cluster)
    budget = check_budget(budget, n_candidates)
    rng = check_random_state(rng)
    n_neighbors, min_cluster_size = int(n_neighbors), int(min_cluster_size)
    n_u = n_candidates  # positions < n_u are the candidates
    n = X_all.shape[0]
    n_clusters = min(n - n_u + budget, n)
    if max_clusters is not None:
        n_clusters = min(n_clusters, max_clusters)
    max_samples = None if kmeans_samples_per_cluster is None else \
        int(kmeans_samples_per_cluster) * n_clusters
    _, labels = clustering.kmeans(X_all, n_clusters, rng=rng, backend=kmeans_backend,
                                  max_samples=max_samples)
    sizes = np.bincount(labels, minlength=n_clusters)
    covered = np.bincount(labels[n_u:], minlength=n_clusters)  # labeled or picked
    left = np.bincount(labels[:n_u], minlength=n_clusters)  # unlabeled, not picked yet
    cluster_ids = np.arange(n_clusters)
    by_cluster = np.argsort(labels, kind="stable")  # members of each cluster, ascending
    starts = np.concatenate([[0], np.cumsum(sizes)])
    big_enough = sizes >= min_cluster_size
    available = np.ones(n_u, dtype=bool)
    cap = None if typicality_candidates is None else int(typicality_candidates)

    def rows(members: np.ndarray):
        if X_device is not None:
            return X_device[positions_like(X_device, members)]
        return np.asarray(X_all[members], dtype=np.float32)

    def take(A, pos: np.ndarray):
        """Rows ``pos`` (host) of ``rows()``'s output."""
        return A[pos] if X_device is None else A[positions_like(A, pos)]

    def scored(dist) -> np.ndarray:
        """Typicality of ``[m, k]`` distances, on their device, as a host ``[m]`` array."""
        return to_host(typicality(dist))

    def density(members: np.ndarray) -> np.ndarray:
        k = min(n_neighbors, members.size - 1)
        if k < 1:
            return np.zeros(members.size)
        _, dist = neighbors.knn_graph(rows(members), k, backend=knn_backend, rng=rng)
        return scored(dist)

    class Scored:
        """One large cluster: exact typicality of its members in the order of a cheap
        estimate (kNN distances to a random sample of ``cap`` members), ``cap`` at a time."""

        def __init__(self, members: np.ndarray) -> None:
            self.members = members
            Xc = rows(members)  # not kept: all large clusters' rows would be a copy of X
            m = members.size
            k = min(n_neighbors, m - 1)
            sample = np.sort(rng.choice(m, size=cap, replace=False))
            # the k-th neighbour among m points ~ the (k cap / m)-th among cap of them
            k_est = max(1, min(cap - 1, round(k * cap / m)))
            estimate = scored(neighbors.knn_among(take(Xc, sample), Xc, None, k_est,
                                                  self_positions=sample))
            self.order = np.argsort(-estimate, kind="stable")
            self.scores = np.full(m, -np.inf)
            self.done = 0
            self.k = k
            self.fill(Xc)

        def fill(self, Xc=None) -> bool:
            """Score the next ``cap`` members of the order; False when none is left."""
            if self.done >= self.order.size:
                return False
            Xc = rows(self.members) if Xc is None else Xc
            part = self.order[self.done:self.done + cap]
            self.done += part.size
            self.scores[part] = scored(neighbors.knn_among(Xc, take(Xc, part), part, self.k))
            return True

    per_cluster: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    partial: dict[int, Scored] = {}

    def best_in(c: int, free: np.ndarray) -> int:
        """Position in the cluster's members of the free member to pick."""
        if c in partial:
            part = partial[c]
            while True:
                cand = np.where(free, part.scores, -np.inf)
                j = int(np.argmax(cand))
                if np.isfinite(cand[j]) or not part.fill():
                    return j
        return int(np.argmax(np.where(free, per_cluster[c][1], -np.inf)))

    per_cluster: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    global_scores: np.ndarray | None = None
    positions = np.empty(budget, dtype=np.int64)
    scores = np.empty(budget, dtype=np.float64)
    for b in range(budget):
        eligible = cluster_ids[big_enough & (left > 0)]
        if eligible.size:
            # fewest covered first, then largest, then lowest id
            c = int(eligible[np.lexsort((eligible, -sizes[eligible], covered[eligible]))[0]])
            if c not in per_cluster:
                members = by_cluster[starts[c]:starts[c + 1]]
                if cap is not None and members.size > cap and members.size > 1:
                    partial[c] = Scored(members)
                    per_cluster[c] = (members, partial[c].scores)
                else:
                    per_cluster[c] = (members, density(members))
            members, member_scores = per_cluster[c]
            free = members < n_u
            free[free] = available[members[free]]
            best = best_in(c, free)
            pos, score = int(members[best]), float(member_scores[best])
            covered[c] += 1
            left[c] -= 1
        else:
            if global_scores is None:
                global_scores = density(np.arange(n))[:n_u]
            pos = int(np.argmax(np.where(available, global_scores, -np.inf)))
            score = float(global_scores[pos])
            c = int(labels[pos])
            covered[c] += 1
            left[c] -= 1
        available[pos] = False
        positions[b], scores[b] = pos, score
    return positions, scores
