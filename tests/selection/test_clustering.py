from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.selection import clustering
from medactive.selection.clustering import kmeans, representatives

CENTRES = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    return (np.repeat(CENTRES, 10, axis=0) + rng.normal(scale=0.5, size=(30, 2))).astype(
        np.float32)


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
def test_kmeans_recovers_blobs(backend):
    X = _blobs()
    centres, labels = kmeans(X, 3, rng=0, backend=backend, batch_size=16, n_init=5)
    assert centres.shape == (3, 2) and labels.shape == (30,)
    for blob in range(3):  # each blob is one cluster
        assert len(set(labels[blob * 10:(blob + 1) * 10].tolist())) == 1
    assert len(set(labels.tolist())) == 3
    again = kmeans(X, 3, rng=0, backend=backend, batch_size=16, n_init=5)[1]
    assert labels.tolist() == again.tolist()


def test_representatives_by_hand():
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    labels = np.array([0, 0, 0, 1, 1])
    centres = np.array([[1.2], [10.5]])
    assert representatives(X, centres, labels).tolist() == [1, 3]  # 11 ties 10: lower wins


def test_representatives_across_blocks_match_the_dense_rule():
    # rows past the first block: the per-row distances are the same as in one dense pass
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2 * clustering.BLOCK + 7, 3)).astype(np.float32)
    labels = rng.integers(5, size=X.shape[0])
    centres = rng.normal(size=(5, 3)).astype(np.float32)
    d2 = ((X - centres[labels]) ** 2).sum(axis=1)
    want = [int(np.flatnonzero(labels == c)[np.argmin(d2[labels == c])]) for c in range(5)]
    assert representatives(X, centres, labels).tolist() == want


def test_representatives_hold_no_n_by_d_temporary():
    # issue 12 at n = 10^6 (512-d): X - centres[labels] held two [n, d] float32 temporaries
    # (4 GB) on top of X; blocked, the extra memory is O(n) plus one block of rows
    import tracemalloc

    n, d = 16 * clustering.BLOCK, 32  # one block of rows is 1/16 of X
    X = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    labels = np.arange(n) % 7
    centres = np.zeros((7, d), dtype=np.float32)
    tracemalloc.start()
    try:
        representatives(X, centres, labels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 2, (peak, X.nbytes)


def test_errors():
    with pytest.raises(ConfigError):
        kmeans(np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match="backend"):
        kmeans(np.zeros((4, 2)), 2, backend="scipy")
