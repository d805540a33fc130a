"""k-center greedy (farthest-first traversal) without an ``n × n`` distance matrix.

Core-Set keeps ``min_dist[i]``, the distance from unlabeled point ``i`` to its nearest centre
(labeled points and points picked so far). The initial value is computed in row chunks against
the labeled set (``O(chunk · m)`` memory); each pick then needs the distances from all points to
the one new centre and a running ``minimum`` (``O(n d)`` time, ``O(n)`` memory). Distances to
several likely next centres are computed in one matrix product (``lookahead``), which turns
memory-bound matrix-vector products into a compute-bound matrix product without changing the
picks. ``X`` may be a :class:`~medactive.selection.embedding.HalfMatrix` (16-bit storage, read
in float32 blocks: half the bytes per pass). ``X`` may also be a torch tensor, e.g. on a GPU
(``--selection-device cuda``): the products and running minima stay on its device, the random
draws are made on the host, and only each pick's index and distance come back, so numpy and
torch pick the same points.

Example:
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [10.0]])
    >>> idx, dist = k_center_greedy(X, 2, X_labeled=np.array([[0.0]]), rng=0)
    >>> idx.tolist(), dist.tolist()
    ([3, 2], [10.0, 2.0])
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget
from medactive.scoring._arrays import (
    as_float,
    asarray_like,
    device,
    is_device_array,
    largest,
    namespace,
    positions_like,
    sq_row_norms,
    to_host,
)
from medactive.selection.embedding import HalfMatrix

METRICS = ("l2", "cosine")


def k_center_greedy(X: np.ndarray, n_centers: int, *, X_labeled: np.ndarray | None = None,
                    metric: str = "l2", rng: RandomLike = None, projection_dim: int | None = None,
                    chunk_size: int = 4096, lookahead: int = 32,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Farthest-first traversal of ``X`` starting from the centres ``X_labeled``.

    Args:
        X: ``[n, d]`` candidate (unlabeled) vectors. float32 is kept, a
            :class:`~medactive.selection.embedding.HalfMatrix` is read in float32 blocks
            (products accumulate in float32), other types become float64.
        n_centers: number of points to pick, ``1 <= n_centers <= n``.
        X_labeled: ``[m, d]`` existing centres (labeled samples); with none, the first pick is
            drawn uniformly by ``rng``.
        metric: ``"l2"`` (Euclidean) or ``"cosine"`` (``1 - cos``). Cosine farthest-first is
            L2 farthest-first on unit-normalised rows; zero rows stay at the origin.
        rng: seed or Generator (first pick without labeled set; random projection).
        projection_dim: if given and smaller than ``d``, run on a Gaussian random projection
            to that many dimensions (Johnson–Lindenstrauss), drawn from ``rng``.
        chunk_size: rows per block when computing distances to the labeled set.
        lookahead: distances to this many current farthest points are computed in one
            matrix product (``[n, lookahead]`` extra memory); picks are taken from them while
            the exact farthest point is among them. Same picks as one-at-a-time greedy (up to
            floating-point rounding of near-ties, e.g. with float32 inputs), several times
            less memory traffic. ``1`` = one matrix-vector product per pick.

    Returns:
        ``(positions, distances)``: ``[n_centers]`` positions into ``X`` in selection order, and
        each pick's distance to its nearest centre when it was chosen (NaN for a first pick
        made without labeled set). Ties go to the lowest position.

    References:
        Sener and Savarese, "Active learning for convolutional neural networks: a core-set
        approach", ICLR 2018.
    """
    X = _as_float(X, "X")
    n_centers = check_budget(n_centers, X.shape[0], name="n_centers")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if X_labeled is None:
        X_labeled = (np.zeros((0, X.shape[1]), dtype=np.float32) if isinstance(X, HalfMatrix)
                     else namespace(X).zeros((0, X.shape[1]), dtype=X.dtype,
                                             device=device(X)))
    X_labeled = _as_float(X_labeled, "X_labeled")
    if X_labeled.shape[1] != X.shape[1]:
        raise ValueError(f"X_labeled has {X_labeled.shape[1]} features, X has {X.shape[1]}")
    rng = check_random_state(rng)
    if projection_dim is not None and projection_dim < X.shape[1]:
        host = np.float32 if isinstance(X, HalfMatrix) or X.dtype == namespace(X).float32 \
            else np.float64  # drawn on the host for every backend: the same projection
        proj = rng.standard_normal((X.shape[1], int(projection_dim))).astype(host)
        proj /= np.sqrt(projection_dim)
        if isinstance(X, HalfMatrix):
            X = X.project(proj)
        else:
            proj = asarray_like(X, proj)
            X = X @ proj
        X_labeled = X_labeled @ asarray_like(X_labeled, to_host(proj))
    if lookahead < 1:
        raise ValueError(f"lookahead must be at least 1, got {lookahead}")
    return _k_center_greedy(X, n_centers, X_labeled, metric, rng, int(chunk_size),
                            int(lookahead))


def _k_center_greedy(X: np.ndarray, n_centers: int, X_labeled: np.ndarray, metric: str,
                     rng: np.random.Generator, chunk_size: int, lookahead: int,
                     ) -> tuple[np.ndarray, np.ndarray]:
    n, m = X.shape[0], X_labeled.shape[0]
    # cosine: L2 on unit vectors, |u - v|^2 = 2 - 2 cos, without a normalised copy of X
    inv_x, sq_x = _scales(X, metric)
    inv_l, sq_l = _scales(X_labeled, metric)
    if is_device_array(sq_x):
        return _k_center_greedy_xp(X, n_centers, X_labeled, rng, chunk_size, lookahead, metric,
                                   (inv_x, sq_x, inv_l, sq_l))
    min_d2 = np.full(n, np.inf, dtype=np.float64)
    if m:
        # blocks of at most ~2^20 distances, computed in place: O(block) extra memory
        rows = max(1, min(chunk_size, 2**20 // m))
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            block = (X.matmul_t(X_labeled, start, stop) if isinstance(X, HalfMatrix)
                     else X[start:stop] @ X_labeled.T)
            if inv_x is not None:
                block *= inv_x[start:stop, None]
                block *= inv_l[None, :]
            block *= -2.0
            block += sq_l[None, :].astype(block.dtype)
            min_d2[start:stop] = block.min(axis=1)
            min_d2[start:stop] += sq_x[start:stop]
        np.maximum(min_d2, 0.0, out=min_d2)

    picks = np.empty(n_centers, dtype=np.int64)
    picked = np.empty(n_centers, dtype=np.float64)
    step = 0
    if not m:  # no labeled set: the first centre is drawn at random
        center = int(rng.integers(n))
        picks[0], picked[0], step = center, np.nan, 1
        np.minimum(min_d2, _sq_dists(X, np.array([center]), sq_x, inv_x)[:, 0], out=min_d2)
        min_d2[center] = -np.inf
    while step < n_centers:
        # Look ahead: distances to the `lookahead` current farthest points in one matrix
        # product (the same memory traffic as one matrix-vector product). Picks are taken
        # while the exact argmax is among them, so the result equals one-at-a-time greedy.
        n_cand = min(lookahead, n - step)
        cand = np.argpartition(min_d2, n - n_cand)[n - n_cand:]
        cols = _sq_dists(X, cand, sq_x, inv_x)
        column = {int(c): k for k, c in enumerate(cand)}
        while step < n_centers:
            center = int(np.argmax(min_d2))
            k = column.get(center)
            if k is None:
                break
            picks[step], picked[step] = center, min_d2[center]
            step += 1
            np.minimum(min_d2, cols[:, k], out=min_d2)
            min_d2[center] = -np.inf  # never picked twice
    return picks, _distances(picked, metric)


def _distances(picked: np.ndarray, metric: str) -> np.ndarray:
    dist = np.sqrt(np.maximum(picked, 0.0))
    if metric == "cosine":
        dist = picked / 2.0  # 1 - cos = |u - v|^2 / 2 on unit vectors
    dist[np.isnan(picked)] = np.nan
    return dist


def _k_center_greedy_xp(X, n_centers: int, X_labeled, rng: np.random.Generator,
                        chunk_size: int, lookahead: int, metric: str, scales,
                        ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_k_center_greedy` on an array-API backend (torch tensors, e.g. on a GPU): the
    same operations in the same order, the running minimum on the device, picks on the host."""
    inv_x, sq_x, inv_l, sq_l = scales
    xp = namespace(sq_x)
    n, m = X.shape[0], X_labeled.shape[0]
    min_d2 = xp.full(n, float("inf"), dtype=xp.float64, device=device(sq_x))
    if m:
        rows = max(1, min(chunk_size, 2**20 // m))
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            block = X[start:stop] @ X_labeled.T
            if inv_x is not None:
                block = block * inv_x[start:stop, None] * inv_l[None, :]
            block = block * -2.0 + xp.astype(sq_l[None, :], block.dtype)
            min_d2[start:stop] = xp.astype(xp.min(block, axis=1), xp.float64) + sq_x[start:stop]
        min_d2 = xp.clip(min_d2, min=0.0)
    picks = np.empty(n_centers, dtype=np.int64)
    picked = np.empty(n_centers, dtype=np.float64)
    step = 0
    if not m:  # no labeled set: the first centre is drawn at random (on the host)
        center = int(rng.integers(n))
        picks[0], picked[0], step = center, np.nan, 1
        min_d2 = xp.minimum(min_d2, _sq_dists(X, np.array([center]), sq_x, inv_x)[:, 0])
        min_d2[center] = -float("inf")
    while step < n_centers:
        cand = largest(min_d2, min(lookahead, n - step))
        cols = _sq_dists(X, cand, sq_x, inv_x)
        column = {int(c): k for k, c in enumerate(to_host(cand).tolist())}
        while step < n_centers:
            center = int(xp.argmax(min_d2))  # the first of equal maxima, as numpy
            k = column.get(center)
            if k is None:
                break
            picks[step], picked[step] = center, float(min_d2[center])
            step += 1
            min_d2 = xp.minimum(min_d2, xp.astype(cols[:, k], xp.float64))
            min_d2[center] = -float("inf")  # never picked twice
    return picks, _distances(picked, metric)


def _sq_dists(X: np.ndarray, cand: np.ndarray, sq_x: np.ndarray,
              inv_x: np.ndarray | None) -> np.ndarray:
    """``[n, len(cand)]`` squared distances ``|x|^2 + |c|^2 - 2 <x, c>`` (unit rows if cosine)."""
    if isinstance(X, HalfMatrix):
        cols = X.matmul_t(X.rows(cand))
    elif is_device_array(X):
        cand = positions_like(X, cand)
        cols = X @ X[cand].T
        if inv_x is not None:
            cols = cols * inv_x[:, None] * inv_x[cand][None, :]
        return cols * -2.0 + sq_x[:, None] + sq_x[cand][None, :]
    else:
        cols = X @ X[cand].T
    if inv_x is not None:
        cols *= inv_x[:, None]
        cols *= inv_x[cand][None, :]
    cols *= -2.0
    cols += sq_x[:, None]
    cols += sq_x[cand][None, :]
    return cols


def _scales(X: np.ndarray, metric: str) -> tuple[np.ndarray | None, np.ndarray]:
    """``(1/|x|, |x|^2 after scaling)``: no scaling for L2, unit rows for cosine."""
    if isinstance(X, HalfMatrix):
        sq = X.sq_norms()
        dtype = np.float32
    else:
        sq = sq_row_norms(X)
        dtype = X.dtype
    if metric == "l2":
        return None, sq
    if is_device_array(sq):
        xp = namespace(sq)
        norms = xp.sqrt(sq)
        ones, zeros = xp.ones_like(norms), xp.zeros_like(norms)
        inv = xp.where(norms > 0, ones / xp.where(norms > 0, norms, ones), zeros)
        return xp.astype(inv, dtype), xp.where(norms > 0, ones, zeros)
    norms = np.sqrt(sq)
    inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    return inv.astype(dtype), np.where(norms > 0, 1.0, 0.0)


def _as_float(X: np.ndarray, name: str) -> np.ndarray:
    if isinstance(X, HalfMatrix):  # checked for finite values when it was encoded
        return X
    if is_device_array(X):
        return as_float(X, name)
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be [n, d], got shape {X.shape}")
    if X.dtype != np.float32:
        X = X.astype(np.float64, copy=False)
    for start in range(0, X.shape[0], 65536):
        if not np.isfinite(X[start:start + 65536]).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    return X
