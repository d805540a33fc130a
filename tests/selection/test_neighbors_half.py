"""float16 storage in the kNN graphs (issue 16): the same neighbours as float32 where the
fixture has no near-ties, exact search below EXACT_MAX_N and float16 HNSW codes above."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.selection import neighbors
from medactive.selection.neighbors import knn_among, knn_graph, resolve_dtype


def _points(n=300, d=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_float16_exact_neighbours_equal_float32_ones():
    X, k = _points(), 5
    ref_idx, ref_dist = knn_graph(X, k + 1)
    # rows with no near-tie: the k + 1 nearest distances differ by far more than float16
    # rounding (relative 2^-11 on values of order 1), so the k nearest are unambiguous
    rows = (np.diff(ref_dist, axis=1) > 2e-2).all(axis=1)
    assert rows.sum() > 50
    idx, dist = knn_graph(X.astype(np.float16), k)
    np.testing.assert_array_equal(idx[rows], ref_idx[rows, :k])
    np.testing.assert_allclose(dist, ref_dist[:, :k], rtol=2e-3, atol=2e-3)


def test_float16_hnsw_keeps_codes_in_16_bits(monkeypatch):
    import faiss

    made = []
    real = faiss.IndexHNSWSQ

    def spy(*args):
        made.append(args[1])
        return real(*args)

    monkeypatch.setattr(faiss, "IndexHNSWSQ", spy)
    monkeypatch.setattr(neighbors, "EXACT_MAX_N", 50)
    X, k = _points(n=400), 5
    ref_idx, _ = knn_graph(X, k)  # float32 HNSW
    idx, dist = knn_graph(X.astype(np.float16), k)
    assert made == [faiss.ScalarQuantizer.QT_fp16]
    assert idx.shape == (X.shape[0], k) and dist.dtype == np.float32
    assert not (idx == np.arange(X.shape[0])[:, None]).any()
    # HNSW is approximate in both: nearly all neighbours agree on this small, tie-free pool
    assert (idx == ref_idx).mean() > 0.95


def test_knn_among_equals_the_full_graph_rows():
    X, k = _points(n=120), 5
    _, full = knn_graph(X, k)
    pos = np.array([3, 0, 50])
    np.testing.assert_allclose(knn_among(X, X[pos], pos, k), full[pos], rtol=1e-5)


def test_resolve_dtype():
    assert resolve_dtype("auto", neighbors.HALF_PRECISION_FROM - 1) == np.float32
    assert resolve_dtype("auto", neighbors.HALF_PRECISION_FROM) == np.float16
    assert resolve_dtype("float32", 10**7) == np.float32
    with pytest.raises(ValueError, match="embedding_dtype"):
        resolve_dtype("bfloat8", 10)
