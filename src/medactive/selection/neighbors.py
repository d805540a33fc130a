"""k-nearest-neighbour graphs without dense distance matrices, and typicality.

Density and coverage methods (TypiClust's typicality, ProbCover's ball graph) need each point's
``k`` nearest neighbours. ``n × n`` matrices stop at ``n ≈ 3·10^4``; FAISS (exact for moderate
pools, HNSW beyond) and pynndescent (approximate NN-descent) scale to ``10^6``.

16-bit storage (issue 16): :func:`knn_graph` accepts a float16 ``X``. Up to
:data:`EXACT_MAX_N` points it is decoded to float32 (at most a few hundred MB) and searched
exactly; above, FAISS keeps the vectors as float16 codes (``IndexHNSWSQ``, ``QT_fp16``: half
the bytes of ``IndexHNSWFlat``'s copy), added and searched in float32 blocks, distances
computed in float32. :func:`resolve_dtype` says what a strategy's ``embedding_dtype`` option
means for a pool size.

Device arrays (issue 16 part 4, ``--selection-device cuda``): given a torch tensor (any
array-API array that is not numpy), :func:`knn_graph`, :func:`knn_among` and
:func:`typicality` search exactly by brute force on the tensor's device, in blocks of query
rows (:data:`DEVICE_BLOCK_ELEMENTS` squared distances at a time, ``|q|² + |x|² - 2 q·x`` in
float32 on rows centred on the searched rows' mean, as FAISS's flat index computes them but
with less cancellation), and return arrays of that backend; ``backend`` and ``rng`` are not
used there (no draw is made).

Example:
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [3.0], [10.0]], dtype=np.float32)
    >>> idx, dist = knn_graph(X, 1)
    >>> idx[:, 0].tolist(), dist[:, 0].tolist()
    ([1, 0, 1, 2], [1.0, 1.0, 2.0, 7.0])
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive.scoring._arrays import (
    asarray_like,
    is_device_array,
    namespace,
    positions_like,
    smallest_per_row,
    sq_row_norms,
)

BACKENDS = ("faiss", "pynndescent")
#: above this many points the FAISS backend switches from exact search to an HNSW index
EXACT_MAX_N = 50_000
#: the kNN strategies' ``embedding_dtype`` choices
EMBEDDING_DTYPES = ("auto", "float32", "float16")
#: ``"auto"`` stores embeddings in float16 from this many rows (the BADGE / Core-Set
#: helper's :data:`medactive.selection.embedding.HALF_PRECISION_FROM` is the same size)
HALF_PRECISION_FROM = 250_000
#: float16's largest finite value
FLOAT16_MAX = 65504.0
#: rows per block when 16-bit vectors are decoded for FAISS
HALF_BLOCK = 65536
#: squared distances per block of the device search (2^26 float32 = 256 MB of the ``[b, n]``
#: block, plus its mask)
DEVICE_BLOCK_ELEMENTS = 2**26


def resolve_dtype(embedding_dtype: str, n: int) -> np.dtype:
    """The storage dtype ``embedding_dtype`` means for ``n`` rows.

    ``"auto"`` is float32 below :data:`HALF_PRECISION_FROM` rows (small pools keep their exact
    picks) and float16 from there on; ``"float32"`` and ``"float16"`` are taken as they are.

    Example:
        >>> [str(resolve_dtype(e, n)) for e, n in (("auto", 10), ("auto", 10**6), ("float16", 5))]
        ['float32', 'float16', 'float16']
    """
    if embedding_dtype not in EMBEDDING_DTYPES:
        raise ValueError(f"embedding_dtype must be one of {EMBEDDING_DTYPES}, got "
                         f"{embedding_dtype!r}")
    if embedding_dtype == "auto":
        embedding_dtype = "float16" if n >= HALF_PRECISION_FROM else "float32"
    return np.dtype(embedding_dtype)


def knn_graph(X: np.ndarray, n_neighbors: int, *, backend: str = "faiss",
              rng: RandomLike = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_neighbors`` nearest other points of every point (Euclidean).

    Args:
        X: ``[n, d]`` vectors (converted to float32, except float16, kept as it is: see the
            module docstring).
        n_neighbors: ``k``, ``1 <= k < n``.
        backend: ``"faiss"`` (exact ``IndexFlatL2`` up to :data:`EXACT_MAX_N` points, HNSW
            above) or ``"pynndescent"`` (approximate, seeded by ``rng``).
        rng: seed or Generator (pynndescent only; FAISS search is deterministic).

    Returns:
        ``(indices [n, k] int64, distances [n, k] float32)``, nearest first, self excluded.

    References:
        Johnson, Douze and Jégou, "Billion-scale similarity search with GPUs", 2019;
        Dong, Charikar and Li, "Efficient k-nearest neighbor graph construction", WWW 2011.
    """
    if is_device_array(X):  # exact brute force on the tensor's device
        n = X.shape[0]
        if X.ndim != 2:
            raise ValueError(f"X must be [n, d], got shape {tuple(X.shape)}")
        if not 1 <= n_neighbors < n:
            raise ValueError(f"n_neighbors must be in [1, {n - 1}] for {n} points, got "
                             f"{n_neighbors}")
        own = np.arange(n, dtype=np.int64)
        return _device_search(X, X, n_neighbors, own, own)
    half = np.asarray(X).dtype == np.float16
    X = np.ascontiguousarray(X, dtype=np.float16 if half else np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be [n, d], got shape {X.shape}")
    n = X.shape[0]
    if half and (n <= EXACT_MAX_N or backend != "faiss"):
        X, half = X.astype(np.float32), False  # small, or pynndescent: decode once
    if not 1 <= n_neighbors < n:
        raise ValueError(f"n_neighbors must be in [1, {n - 1}] for {n} points, got {n_neighbors}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    k = n_neighbors + 1  # the point itself comes back among its own neighbours
    if backend == "faiss":
        idx, dist = _faiss_search(X, k)  # the index (a copy of X) is freed on return
        np.sqrt(np.maximum(dist, 0.0, out=dist), out=dist)  # squared -> distances, in place
    else:
        from pynndescent import NNDescent

        seed = int(check_random_state(rng).integers(2**31 - 1))
        idx, dist = NNDescent(X, n_neighbors=k, random_state=seed).neighbor_graph
    return _drop_self(idx.astype(np.int64, copy=False), dist.astype(np.float32, copy=False),
                      n_neighbors)


def _faiss_search(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids [n, k] int64, squared distances [n, k] float32)`` of every row of ``X`` among
    ``X``. The index holds its own copy of ``X`` (2 GB at 10^6 × 512); it lives only here, so
    it is gone before the caller trims and copies the results."""
    import faiss

    n, d = X.shape
    if X.dtype == np.float16:  # n > EXACT_MAX_N: float16 codes in the index, float32 blocks
        index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16, 32)
        for start in range(0, n, HALF_BLOCK):
            index.add(X[start:start + HALF_BLOCK].astype(np.float32))
        d2 = np.empty((n, k), dtype=np.float32)
        idx = np.empty((n, k), dtype=np.int64)
        for start in range(0, n, HALF_BLOCK):
            stop = min(start + HALF_BLOCK, n)
            d2[start:stop], idx[start:stop] = index.search(X[start:stop].astype(np.float32), k)
        return idx, d2
    index = faiss.IndexFlatL2(d) if n <= EXACT_MAX_N else faiss.IndexHNSWFlat(d, 32)
    index.add(X)
    d2, idx = index.search(X, k)
    return idx, d2


def knn_among(X: np.ndarray, queries: np.ndarray, positions: np.ndarray | None,
              n_neighbors: int, *, self_positions: np.ndarray | None = None) -> np.ndarray:
    """Exact distances ``[m, k]`` (nearest first) from each query to its ``n_neighbors``
    nearest rows of ``X`` other than itself (FAISS flat index: one matrix product of
    ``m × n``; TypiClust scores a large cluster's members this way).

    Args:
        X: ``[n, d]`` the rows searched.
        queries: ``[m, d]``.
        positions: ``[m]``: query ``i`` is row ``positions[i]`` of ``X`` (excluded), or
            ``None`` with ``self_positions``.
        n_neighbors: ``k``.
        self_positions: ``[n]``: row ``j`` of ``X`` is query ``self_positions[j]`` (``X`` a
            sample of the queries); each query's own row is excluded where present.

    Example:
        >>> X = np.array([[0.0], [1.0], [3.0], [10.0]], dtype=np.float32)
        >>> knn_among(X, X[[2]], np.array([2]), 2).tolist()
        [[2.0, 3.0]]
    """
    if is_device_array(X):  # exact brute force on the tensor's device
        if positions is None:  # row j of X is query self_positions[j]
            query_ids = np.arange(queries.shape[0], dtype=np.int64)
            row_ids = np.asarray(self_positions, dtype=np.int64)
        else:  # query i is row positions[i] of X
            query_ids = np.asarray(positions, dtype=np.int64)
            row_ids = np.arange(X.shape[0], dtype=np.int64)
        return _device_search(X, queries, n_neighbors, query_ids, row_ids)[1]
    import faiss

    X = np.ascontiguousarray(X, dtype=np.float32)
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    d2, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), n_neighbors + 1)
    del index
    np.sqrt(np.maximum(d2, 0.0, out=d2), out=d2)
    if positions is None:  # map each found row to the query it is, -1 for none
        owner = np.asarray(self_positions, dtype=np.int64)
        idx = np.where(idx >= 0, owner[np.maximum(idx, 0)], -1)
        positions = np.arange(idx.shape[0])
    positions = np.asarray(positions, dtype=np.int64)
    return _drop_self(idx, d2, n_neighbors, positions)[1]


def typicality(X: np.ndarray, n_neighbors: int = 20, **kwargs) -> np.ndarray:
    """TypiClust's typicality: inverse mean distance to the ``k`` nearest neighbours.

    Args:
        X: ``[n, d]`` vectors.
        n_neighbors: ``k`` (TypiClust uses 20).
        **kwargs: passed to :func:`knn_graph` (``backend``, ``rng``).

    Returns:
        ``[n]`` scores, higher = in a denser region (more typical).

    References:
        Hacohen, Dekel and Weinshall, "Active learning on a budget: opposite strategies suit
        high and low budgets", ICML 2022.
    """
    from medactive.scoring.representativeness import typicality as from_distances

    _, dist = knn_graph(X, n_neighbors, **kwargs)
    return from_distances(dist)


def _device_search(X, queries, k: int, query_ids: np.ndarray, row_ids: np.ndarray):
    """``(indices [m, k] int64, distances [m, k] float32)`` of the ``k`` nearest rows of
    ``X`` to each query, nearest first, row ``j`` skipped for query ``i`` where
    ``row_ids[j] == query_ids[i]`` (the query itself), on ``X``'s backend and device."""
    xp = namespace(X)
    X = X if X.dtype == xp.float32 else xp.astype(X, xp.float32)
    queries = queries if queries.dtype == xp.float32 else xp.astype(queries, xp.float32)
    if X.ndim != 2 or queries.ndim != 2 or queries.shape[1] != X.shape[1]:
        raise ValueError(f"X [n, d] and queries [m, d] must have the same width, got shapes "
                         f"{tuple(X.shape)} and {tuple(queries.shape)}")
    centre = xp.mean(X, axis=0)  # any shift leaves distances; this one spares float32 digits
    X, queries = X - centre, queries - centre
    x_norms = xp.astype(sq_row_norms(X), xp.float32)
    q_norms = xp.astype(sq_row_norms(queries), xp.float32)
    rows = positions_like(X, row_ids)
    qids = positions_like(X, query_ids)
    n, m = X.shape[0], queries.shape[0]
    step = max(1, DEVICE_BLOCK_ELEMENTS // max(1, n))
    idx_parts, dist_parts = [], []
    for start in range(0, m, step):
        stop = min(start + step, m)
        d2 = q_norms[start:stop, None] + x_norms[None, :] - 2.0 * (queries[start:stop] @ X.T)
        d2 = xp.where(rows[None, :] == qids[start:stop, None], xp.inf, d2)
        values, found = smallest_per_row(d2, k)
        dist_parts.append(xp.sqrt(xp.maximum(values, 0.0)))
        idx_parts.append(xp.astype(found, xp.int64))
    if not dist_parts:
        empty = asarray_like(X, np.zeros((0, k), dtype=np.float32))
        return xp.astype(empty, xp.int64), empty
    return xp.concat(idx_parts), xp.concat(dist_parts)


def _drop_self(idx: np.ndarray, dist: np.ndarray, k: int,
               positions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    # self is usually column 0, but duplicates (distance 0) may put it elsewhere or not at all
    if positions is None:
        positions = np.arange(idx.shape[0])
    is_self = idx == positions[:, None]
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True  # drop the farthest instead
    keep = ~is_self
    return idx[keep].reshape(-1, k), dist[keep].reshape(-1, k)
