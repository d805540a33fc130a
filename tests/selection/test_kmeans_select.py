from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.selection.kmeans_select import kmeans_select

CENTRES = np.array([[0.0, 0.0], [30.0, 0.0], [0.0, 30.0], [30.0, 30.0]])


def _grid_blobs(sizes=(25, 25, 25, 25)):
    # blob b: a 5 x 5 grid of spacing 1 around CENTRES[b] (its first `size` points);
    # for a full grid the member nearest the centre is the grid's middle, row 12
    g = np.stack(np.meshgrid(np.arange(-2.0, 3.0), np.arange(-2.0, 3.0)), -1).reshape(-1, 2)
    return np.concatenate([c + g[:s] for c, s in zip(CENTRES, sizes)])


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
def test_one_pick_per_well_separated_blob_at_its_centre(backend):
    # FAISS seeds uniformly (not k-means++): a few restarts find the separated blobs
    pos, sizes = kmeans_select(_grid_blobs(), 4, rng=0, backend=backend, n_init=5)
    assert sorted(pos.tolist()) == [12, 37, 62, 87]
    assert sizes.tolist() == [25.0] * 4


def test_largest_cluster_first():
    X = _grid_blobs(sizes=(10, 25, 15, 20))
    pos, sizes = kmeans_select(X, 4, rng=0, n_init=3)
    assert sizes.tolist() == [25.0, 20.0, 15.0, 10.0]
    blob_of = np.searchsorted(np.cumsum([10, 25, 15, 20]), pos, side="right")
    assert blob_of.tolist() == [1, 3, 2, 0]


def test_reproducible_per_seed_and_empty_clusters_filled():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    a = kmeans_select(X, 7, rng=5)
    np.testing.assert_array_equal(a[0], kmeans_select(X, 7, rng=5)[0])
    np.testing.assert_array_equal(a[1], kmeans_select(X, 7, rng=5)[1])
    # 3 distinct points, budget 5: k-means cannot fill 5 clusters; every pick stays unique
    dup = np.repeat(np.eye(3), 2, axis=0)
    pos, sizes = kmeans_select(dup, 5, rng=0)
    assert np.unique(pos).size == 5 and sizes.min() >= 0


def test_errors():
    with pytest.raises(ConfigError, match="budget"):
        kmeans_select(np.zeros((3, 2)), 4)
    with pytest.raises(ValueError, match="backend"):
        kmeans_select(np.zeros((3, 2)), 1, backend="lloyd")
