"""Clustering-based selection: k-means with k = budget, the point nearest each centre.

The survey's clustering-based representativeness (§3.2.1): cluster the unlabeled embeddings
into as many groups as there are labels to buy and label one representative per group, the
member closest to its centre. k-means runs through
:func:`medactive.selection.clustering.kmeans` (MiniBatchKMeans or FAISS, so 10^6 points fit).

Example:
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [0.2], [9.0], [9.1], [9.2]])
    >>> pos, sizes = kmeans_select(X, 2, rng=0)
    >>> sorted(pos.tolist()), sizes.tolist()
    ([1, 4], [3.0, 3.0])

References:
    Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 1982; Sculley,
    "Web-scale k-means clustering", WWW 2010; Zhdanov, "Diverse mini-batch active learning",
    arXiv:1901.05954, 2019 (k-means on embeddings, the sample nearest each centre).
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget
from medactive.selection import clustering


def kmeans_select(X: np.ndarray, budget: int, *, rng: RandomLike = None,
                  backend: str = "sklearn", n_init: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One point per k-means cluster of ``X``, ``k = budget``.

    Args:
        X: ``[n, d]`` candidate vectors.
        budget: number of picks and of clusters, ``1 <= budget <= n``.
        rng: seed or Generator (k-means seed; the rare fill-in picks below).
        backend: ``"sklearn"`` or ``"faiss"`` (:func:`~medactive.selection.clustering.kmeans`).
        n_init: k-means restarts.

    Returns:
        ``(positions [budget], sizes [budget])``: the member nearest each centre, largest
        cluster first (ties: lower position), and each pick's cluster size. When clusters come
        out empty (duplicates, mini-batch k-means), the missing picks are drawn uniformly at
        random from the points left, with size 0.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be [n, d], got shape {X.shape}")
    budget = check_budget(budget, X.shape[0])
    if backend not in clustering.BACKENDS:
        raise ValueError(f"backend must be one of {clustering.BACKENDS}, got {backend!r}")
    rng = check_random_state(rng)
    centres, labels = clustering.kmeans(X, budget, rng=rng, backend=backend, n_init=n_init)
    reps = clustering.representatives(X, centres, labels)
    sizes = np.bincount(labels, minlength=budget)[labels[reps]].astype(np.float64)
    order = np.lexsort((reps, -sizes))
    reps, sizes = reps[order], sizes[order]
    if reps.size < budget:
        left = np.setdiff1d(np.arange(X.shape[0]), reps)
        extra = rng.choice(left, size=budget - reps.size, replace=False)
        reps = np.concatenate([reps, extra])
        sizes = np.concatenate([sizes, np.zeros(extra.size)])
    return reps.astype(np.int64), sizes
