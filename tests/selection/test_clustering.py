from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
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


def test_errors():
    with pytest.raises(ConfigError):
        kmeans(np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match="backend"):
        kmeans(np.zeros((4, 2)), 2, backend="scipy")
