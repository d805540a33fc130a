"""k-means for large pools through well-kept libraries (scikit-learn MiniBatchKMeans, FAISS).

Clustering-based sampling (survey §3.3, e.g. TypiClust, cluster-margin) needs k-means on
``10^5–10^6`` embeddings; full-batch Lloyd on all points is too slow on a CPU, so we use
mini-batches (scikit-learn) or FAISS's sub-sampled, multi-threaded k-means, and assign the
points in blocks (no ``n × k`` matrix).

Very large pools (issue 16): with ``max_samples``, k-means is fitted on a uniform sample of at
most that many rows (``SAMPLES_PER_CLUSTER · k`` is FAISS's own rule) and every row is then
assigned to its nearest centre in one blocked pass. scikit-learn's k-means++ seeding upcasts
float32 to float64 on every step (29 of the 46 s of a ``k = 500`` fit at 1.3·10^5 × 512), so
the sampled fit seeds with :func:`kmeanspp_float32` instead (the same greedy k-means++ rule,
in float32). 16-bit (float16) ``X`` is never converted whole: only the sample is made
float32. Without ``max_samples`` on a float32 ``X`` the result is exactly as before.

Example:
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [9.0, 9.0], [9.1, 9.0]], dtype=np.float32)
    >>> centres, labels = kmeans(X, 2, rng=0)
    >>> bool(labels[0] == labels[1] != labels[2] == labels[3])
    True
    >>> sorted(representatives(X, centres, labels).tolist()) in ([0, 2], [0, 3], [1, 2], [1, 3])
    True
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget

BACKENDS = ("sklearn", "faiss")
#: rows per block of :func:`representatives` (its memory: O(n) plus one block of rows)
BLOCK = 4096
#: points per centre of the sampled fit (FAISS's ``max_points_per_centroid``)
SAMPLES_PER_CLUSTER = 256
#: the smallest sample a 16-bit ``X`` is fitted on when ``max_samples`` is not given
HALF_SAMPLES_MIN = 65536
#: rows per block of the assignment pass
ASSIGN_BLOCK = 16384


def kmeans(X: np.ndarray, n_clusters: int, *, rng: RandomLike = None, backend: str = "sklearn",
           batch_size: int = 4096, n_iter: int = 25, n_init: int = 1,
           max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ``X`` into ``n_clusters`` groups.

    Args:
        X: ``[n, d]`` vectors (converted to float32, the libraries' native type).
        n_clusters: ``k``, ``1 <= k <= n``.
        rng: seed or Generator; the library seed is drawn from it.
        backend: ``"sklearn"`` (``MiniBatchKMeans``, k-means++ init) or ``"faiss"``
            (``faiss.Kmeans``, Lloyd on a sub-sample of ``256 k`` points, multi-threaded).
        batch_size: mini-batch size (scikit-learn).
        n_iter: Lloyd iterations (FAISS) or passes over the data (scikit-learn ``max_iter``).
        n_init: restarts, the best (lowest inertia) kept. FAISS seeds uniformly at random
            (not k-means++), so on few, well-separated clusters a few restarts help.
        max_samples: fit on a uniform sample (drawn from ``rng``) of this many rows when ``X``
            has more, seeded by :func:`kmeanspp_float32` (scikit-learn), then assign every
            row to its nearest centre in blocks. ``None``: fit on all rows; a float16 ``X``
            then uses ``max(HALF_SAMPLES_MIN, SAMPLES_PER_CLUSTER · k)``.

    Returns:
        ``(centres [k, d] float32, labels [n] int64)``.

    References:
        Sculley, "Web-scale k-means clustering", WWW 2010; Johnson, Douze and Jégou,
        "Billion-scale similarity search with GPUs", 2019 (FAISS).
    """
    half = np.asarray(X).dtype == np.float16
    X = np.ascontiguousarray(X, dtype=np.float16 if half else np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be [n, d], got shape {X.shape}")
    n_clusters = check_budget(n_clusters, X.shape[0], name="n_clusters")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    rng = check_random_state(rng)
    if max_samples is None and half:
        max_samples = max(HALF_SAMPLES_MIN, SAMPLES_PER_CLUSTER * n_clusters)
    if max_samples is not None and X.shape[0] > max(int(max_samples), n_clusters):
        sample = np.sort(rng.choice(X.shape[0], size=max(int(max_samples), n_clusters),
                                    replace=False))
        Xs = X[sample].astype(np.float32)
        init = kmeanspp_float32(Xs[:max(3 * batch_size, 3 * n_clusters)], n_clusters,
                                rng=rng) if backend == "sklearn" else None
        seed = int(rng.integers(2**31 - 1))
        centres, _ = _fit(Xs, n_clusters, seed, backend, batch_size, n_iter, n_init, init)
        del Xs
        return centres, assign(X, centres)
    seed = int(rng.integers(2**31 - 1))
    return _fit(X.astype(np.float32, copy=False), n_clusters, seed, backend, batch_size,
                n_iter, n_init, None)


def _fit(X: np.ndarray, n_clusters: int, seed: int, backend: str, batch_size: int,
         n_iter: int, n_init: int, init: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(centres, labels)`` of one library fit on float32 ``X`` (``init``: k-means++ seeds)."""
    if backend == "faiss":
        import faiss

        km = faiss.Kmeans(X.shape[1], n_clusters, niter=n_iter, nredo=n_init, seed=seed,
                         verbose=False)
        km.train(X)
        centres = km.centroids.astype(np.float32)
        _, labels = km.index.search(X, 1)
        return centres, labels[:, 0].astype(np.int64)
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=n_clusters, batch_size=batch_size, max_iter=n_iter,
                         random_state=seed, n_init=n_init if init is None else 1,
                         compute_labels=True, **({} if init is None else {"init": init}))
    km.fit(X)
    return km.cluster_centers_.astype(np.float32), km.labels_.astype(np.int64)


def kmeanspp_float32(X: np.ndarray, n_clusters: int, *, rng: RandomLike = None,
                     n_local_trials: int | None = None) -> np.ndarray:
    """Greedy k-means++ seeds (Arthur and Vassilvitskii 2007; scikit-learn's rule of
    ``2 + ⌊ln k⌋`` D²-sampled trials per step, the one lowering the potential most kept),
    computed in float32 throughout. ``[k, d]`` float32 rows of ``X``."""
    X = np.asarray(X, dtype=np.float32)
    rng = check_random_state(rng)
    n = X.shape[0]
    trials = n_local_trials or 2 + int(np.log(n_clusters))
    sq = np.einsum("ij,ij->i", X, X)
    first = int(rng.integers(n))
    centres = [first]
    closest = np.maximum(sq + sq[first] - 2.0 * (X @ X[first]), 0.0)
    for _ in range(1, n_clusters):
        total = float(closest.sum(dtype=np.float64))
        if total <= 0:  # fewer distinct points than clusters: any unused rows
            rest = np.setdiff1d(np.arange(n), centres)
            centres.append(int(rest[0]))
            continue
        cand = np.searchsorted(np.cumsum(closest, dtype=np.float64),
                               rng.random(trials) * total)
        cand = np.minimum(cand, n - 1)
        d = np.maximum(sq[None, :] + sq[cand, None] - 2.0 * (X[cand] @ X.T), 0.0)
        np.minimum(d, closest[None, :], out=d)
        best = int(np.argmin(d.sum(axis=1, dtype=np.float64)))
        centres.append(int(cand[best]))
        closest = d[best]
    return X[np.array(centres)].copy()


def assign(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``[n]`` int64: the nearest centre (squared L2, ties to the lowest id) of each row of
    ``X`` (float32 or float16, read in blocks of :data:`ASSIGN_BLOCK` rows as float32)."""
    centres = np.asarray(centres, dtype=np.float32)
    c_sq = np.einsum("ij,ij->i", centres, centres)
    labels = np.empty(X.shape[0], dtype=np.int64)
    for start in range(0, X.shape[0], ASSIGN_BLOCK):
        block = np.asarray(X[start:start + ASSIGN_BLOCK], dtype=np.float32)
        d = block @ centres.T
        d *= -2.0
        d += c_sq  # |x|^2 is the same for every centre of a row
        labels[start:start + block.shape[0]] = d.argmin(axis=1)
    return labels


def representatives(X: np.ndarray, centres: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For each non-empty cluster, the position of its member closest to the centre.

    Args:
        X: ``[n, d]`` vectors.
        centres: ``[k, d]`` cluster centres.
        labels: ``[n]`` cluster of each vector.

    Returns:
        ``[k']`` distinct positions into ``X``, ordered by cluster (``k' <= k``: empty clusters
        have no representative). Ties go to the lowest position.
    """
    X, labels = np.asarray(X), np.asarray(labels, dtype=np.int64)
    centres = np.asarray(centres, dtype=X.dtype)
    d2 = np.empty(X.shape[0], dtype=np.result_type(X.dtype, np.float32))
    for start in range(0, X.shape[0], BLOCK):  # no [n, d] temporaries (4 GB at n = 10^6)
        stop = start + BLOCK
        diff = X[start:stop] - centres[labels[start:stop]]
        d2[start:stop] = np.einsum("ij,ij->i", diff, diff)
    order = np.lexsort((np.arange(X.shape[0]), d2, labels))
    first = np.ones(order.size, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    return order[first]
