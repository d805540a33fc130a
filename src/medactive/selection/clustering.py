"""k-means for large pools through well-kept libraries (scikit-learn MiniBatchKMeans, FAISS).

Clustering-based sampling (survey §3.3, e.g. TypiClust, cluster-margin) needs k-means on
``10^5–10^6`` embeddings; full-batch Lloyd on all points is too slow on a CPU, so we use
mini-batches (scikit-learn) or FAISS's sub-sampled, multi-threaded k-means, and assign the
points in blocks (no ``n × k`` matrix).

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


def kmeans(X: np.ndarray, n_clusters: int, *, rng: RandomLike = None, backend: str = "sklearn",
           batch_size: int = 4096, n_iter: int = 25, n_init: int = 1,
           ) -> tuple[np.ndarray, np.ndarray]:
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

    Returns:
        ``(centres [k, d] float32, labels [n] int64)``.

    References:
        Sculley, "Web-scale k-means clustering", WWW 2010; Johnson, Douze and Jégou,
        "Billion-scale similarity search with GPUs", 2019 (FAISS).
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be [n, d], got shape {X.shape}")
    n_clusters = check_budget(n_clusters, X.shape[0], name="n_clusters")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    seed = int(check_random_state(rng).integers(2**31 - 1))
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
                         random_state=seed, n_init=n_init, compute_labels=True)
    km.fit(X)
    return km.cluster_centers_.astype(np.float32), km.labels_.astype(np.int64)


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
