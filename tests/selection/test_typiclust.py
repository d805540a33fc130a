from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from medactive.errors import ConfigError
from medactive.selection import clustering
from medactive.selection.typiclust import typiclust

CENTRES = np.array([[0.0, 0.0], [30.0, 0.0], [0.0, 30.0]])


def _gaussian_blobs(n_per_blob=25, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([c + rng.normal(size=(n_per_blob, 2)) for c in CENTRES])


def _grid_blobs():
    # each blob: a 5 x 5 grid of spacing 1 around its centre, so the densest point is the centre
    g = np.stack(np.meshgrid(np.arange(-2.0, 3.0), np.arange(-2.0, 3.0)), -1).reshape(-1, 2)
    return np.concatenate([c + g for c in CENTRES])  # blob b's centre is row 25 * b + 12


def _brute_typicality(X, k):
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    return 1.0 / np.sort(D, axis=1)[:, :k].mean(axis=1)


def test_grid_blobs_one_centre_per_blob():
    pos, scores = typiclust(_grid_blobs(), 3, rng=0)
    assert sorted(pos.tolist()) == [12, 37, 62]
    # 20 nearest of a 5 x 5 grid's centre: 4 at 1, 4 at sqrt 2, 4 at 2, 8 at sqrt 5
    expected = 20 / (4 + 4 * np.sqrt(2) + 8 + 8 * np.sqrt(5))
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
def test_gaussian_blobs_pick_each_blobs_dense_centre(backend):
    X = _gaussian_blobs()
    pos, _ = typiclust(X, 3, rng=0, kmeans_backend=backend)
    assert sorted(p // 25 for p in pos.tolist()) == [0, 1, 2]
    for p in pos.tolist():
        b = p // 25
        blob = X[25 * b:25 * (b + 1)]
        assert p - 25 * b == int(np.argmax(_brute_typicality(blob, 20)))
        near_centre = np.argsort(np.linalg.norm(blob - blob.mean(axis=0), axis=1))[:3]
        assert p - 25 * b in near_centre.tolist()


def test_blob_with_a_labeled_point_is_skipped():
    X = _grid_blobs()
    labeled = np.array([[0.5, 0.5]])  # inside blob 0
    pos, _ = typiclust(X, 2, X_labeled=labeled, rng=0)
    assert sorted(pos.tolist()) == [37, 62]


def test_ties_in_coverage_go_to_the_largest_cluster():
    X = np.concatenate([_grid_blobs()[:25], _grid_blobs()[25:34]])  # 25 points and 9 points
    pos, _ = typiclust(X, 1, rng=0)
    assert pos.tolist() == [12]


def test_small_clusters_fall_back_to_global_typicality():
    X = np.array([[0.0], [1.0], [2.0], [4.0], [20.0]])
    # 2 clusters, both under 5 members; global k = 4: mean distances 27/4, 6, 23/4, 25/4, 73/4
    pos, scores = typiclust(X, 2, rng=0)
    assert pos.tolist() == [2, 1]
    np.testing.assert_allclose(scores, [4 / 23, 1 / 6], rtol=1e-6)


def test_number_of_clusters_is_labeled_plus_budget_capped(monkeypatch):
    seen = []
    real = clustering.kmeans

    def spy(X, n_clusters, **kwargs):
        seen.append(n_clusters)
        return real(X, n_clusters, **kwargs)

    monkeypatch.setattr(clustering, "kmeans", spy)
    X, labeled = _gaussian_blobs()[:60], _gaussian_blobs()[60:]
    typiclust(X, 4, X_labeled=labeled, rng=0)
    typiclust(X, 4, X_labeled=labeled, rng=0, max_clusters=6)
    assert seen == [15 + 4, 6]


def test_unique_reproducible_and_whole_pool():
    rng = np.random.default_rng(1)
    X, labeled = rng.normal(size=(40, 5)), rng.normal(size=(6, 5))
    pos, scores = typiclust(X, 12, X_labeled=labeled, rng=3)
    assert pos.shape == scores.shape == (12,) and np.unique(pos).size == 12
    assert pos.min() >= 0 and pos.max() < 40
    again = typiclust(X, 12, X_labeled=labeled, rng=3)
    np.testing.assert_array_equal(pos, again[0])
    np.testing.assert_array_equal(scores, again[1])
    assert sorted(typiclust(X, 40, X_labeled=labeled, rng=0)[0].tolist()) == list(range(40))
    assert typiclust(X[:1], 1, rng=0)[0].tolist() == [0]  # a lone point, no neighbours


def test_errors():
    X = np.zeros((4, 2))
    with pytest.raises(ConfigError, match="budget"):
        typiclust(X, 5)
    with pytest.raises(ConfigError, match="n_neighbors"):
        typiclust(X, 1, n_neighbors=0)
    with pytest.raises(ConfigError, match="min_cluster_size"):
        typiclust(X, 1, min_cluster_size=1.5)
    with pytest.raises(ConfigError, match="kmeans_backend"):
        typiclust(X, 1, kmeans_backend="lloyd")
    with pytest.raises(ConfigError, match="knn_backend"):
        typiclust(X, 1, knn_backend="annoy")
    with pytest.raises(ValueError, match="X_labeled"):
        typiclust(X, 1, X_labeled=np.zeros((2, 3)))


def test_authors_eligibility_rule_is_min_cluster_size_6():
    # the authors' code keeps clusters of more than 5 points (documented in the module): a
    # cluster of exactly 5 is eligible by default here, and not with min_cluster_size=6
    X = np.concatenate([np.arange(5.0)[:, None] * 0.1, 100 + np.arange(8.0)[:, None] * 0.1])
    default, _ = typiclust(X, 2, rng=0)
    assert sorted(int(p >= 5) for p in default.tolist()) == [0, 1]
    authors, _ = typiclust(X, 2, rng=0, min_cluster_size=6)
    assert all(p >= 5 for p in authors.tolist())
