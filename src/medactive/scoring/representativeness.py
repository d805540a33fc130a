"""Representativeness scores from neighbourhood distances (survey §3, density-based methods).

Uncertainty scores (:mod:`medactive.scoring.uncertainty`) ask how unsure the model is about a
sample; representativeness asks how typical the sample is of the data around it. Here the input
is a ``k``-nearest-neighbour distance table, e.g. from
:func:`medactive.selection.neighbors.knn_graph`, so the score stays a pure array function and
the neighbour search (exact, FAISS, pynndescent) is chosen by the caller.

Example:
    >>> import numpy as np
    >>> # distances of 3 points to their 2 nearest neighbours
    >>> d = np.array([[1.0, 1.0], [1.0, 2.0], [4.0, 6.0]])
    >>> typicality(d).round(3)
    array([1.   , 0.667, 0.2  ])
"""

from __future__ import annotations

import numpy as np

#: added to the mean distance so that exact duplicates (mean distance 0) stay finite; the same
#: constant as :func:`medactive.selection.neighbors.typicality`
EPS = 1e-12


def typicality(knn_distances: np.ndarray) -> np.ndarray:
    """TypiClust's typicality, the inverse mean distance to the ``k`` nearest neighbours.

    ``typicality(x) = 1 / (mean_{j=1..k} ||x - x_(j)|| + eps)``, where ``x_(j)`` is the ``j``-th
    nearest other point and ``eps = 1e-12``. It is a cheap density estimate: points in dense
    regions of the embedding score high, outliers score low.

    Args:
        knn_distances: ``[n, k]`` distances from each of ``n`` points to its ``k >= 1`` nearest
            other points (self excluded), any order within a row.

    Returns:
        ``[n]`` float64 scores in ``(0, 1/eps]``; higher = more typical (denser); on the
        distances' backend and device (a torch tensor stays a tensor).

    Raises:
        ValueError: not 2-D, no neighbour columns, or negative / non-finite distances.

    References:
        Hacohen, Dekel and Weinshall, "Active learning on a budget: opposite strategies suit
        high and low budgets", ICML 2022 (Eq. 2).
    """
    from medactive.scoring._arrays import is_device_array, namespace

    if is_device_array(knn_distances):  # a tensor (issue 16 part 4): scored on its device
        xp = namespace(knn_distances)
        d = xp.astype(knn_distances, xp.float64)
        if d.ndim != 2 or d.shape[1] < 1:
            raise ValueError(f"knn_distances must be [n, k] with k >= 1, got shape "
                             f"{tuple(d.shape)}")
        if not bool(xp.all(xp.isfinite(d))) or bool(xp.any(d < 0)):
            raise ValueError("knn_distances must be finite and non-negative")
        return 1.0 / (xp.mean(d, axis=1) + EPS)
    d = np.asarray(knn_distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] < 1:
        raise ValueError(f"knn_distances must be [n, k] with k >= 1, got shape {d.shape}")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ValueError("knn_distances must be finite and non-negative")
    return 1.0 / (d.mean(axis=1) + EPS)
