from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions
from medactive.strategies import create_strategy, list_strategies, strategy_descriptions

CENTRES = np.array([[0.0, 0.0], [30.0, 0.0], [0.0, 30.0]])


def _grid_blobs():
    # three 5 x 5 grids of spacing 1; blob b's centre (its densest point) is row 25 * b + 12
    g = np.stack(np.meshgrid(np.arange(-2.0, 3.0), np.arange(-2.0, 3.0)), -1).reshape(-1, 2)
    return np.concatenate([c + g for c in CENTRES])


def _gaussian_blobs(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([c + rng.normal(size=(20, 2)) for c in CENTRES]).astype(np.float32)


def test_registered_with_paper_defaults():
    assert "typiclust" in list_strategies()
    assert "typical" in strategy_descriptions()["typiclust"]
    s = create_strategy("typiclust")
    assert (s.kmeans_backend, s.n_neighbors, s.min_cluster_size, s.max_clusters) == (
        "sklearn", 20, 5, 500)
    assert s.requires == ("embeddings",)
    assert create_strategy("typiclust", max_clusters=None, n_neighbors=5).n_neighbors == 5


def test_one_pick_per_blob_at_its_centre_without_labels():
    preds = ArrayPredictions(embeddings=_grid_blobs())
    result = create_strategy("typiclust").query(preds, np.arange(75), np.array([], int), 3,
                                                rng=0)
    assert sorted(result.indices.tolist()) == [12, 37, 62]
    assert result.scores.shape == (3,) and np.all(result.scores > 0)


def test_labeled_blob_is_skipped_and_indices_are_pool_absolute():
    preds = ArrayPredictions(embeddings=_grid_blobs())
    labeled = np.array([12])  # the centre of blob 0
    unlabeled = np.setdiff1d(np.arange(75), labeled)[::-1]  # any order, pool-absolute
    result = create_strategy("typiclust").query(preds, unlabeled, labeled, 2, rng=0)
    assert sorted(result.indices.tolist()) == [37, 62]


def test_contract_unique_unlabeled_reproducible():
    preds = ArrayPredictions(embeddings=_gaussian_blobs())
    labeled = np.array([0, 5, 21, 44])
    unlabeled = np.setdiff1d(np.arange(60), labeled)
    strategy = create_strategy("typiclust")
    result = strategy.query(preds, unlabeled, labeled, 9, rng=3)
    assert result.indices.shape == result.scores.shape == (9,)
    assert np.unique(result.indices).size == 9
    assert set(result.indices.tolist()) <= set(unlabeled.tolist())
    assert not set(result.indices.tolist()) & set(labeled.tolist())
    again = strategy.query(preds, unlabeled, labeled, 9, rng=3)
    np.testing.assert_array_equal(result.indices, again.indices)
    np.testing.assert_array_equal(result.scores, again.scores)
    everything = strategy.query(preds, unlabeled, labeled, unlabeled.size, rng=0)
    assert sorted(everything.indices.tolist()) == unlabeled.tolist()


def test_reads_only_embeddings():
    preds = ArrayPredictions(embeddings=_gaussian_blobs())  # no probas, no MC stack
    create_strategy("typiclust").query(preds, np.arange(1, 60), np.array([0]), 3, rng=0)


def test_budget_errors_like_other_strategies():
    preds = ArrayPredictions(embeddings=_gaussian_blobs())
    labeled = np.arange(50)
    unlabeled = np.arange(50, 60)
    for name in ("typiclust", "coreset_l2"):  # same error, same message
        with pytest.raises(ConfigError, match="larger than the 10 unlabeled"):
            create_strategy(name).query(preds, unlabeled, labeled, 11, rng=0)
        with pytest.raises(ConfigError, match="at least 1"):
            create_strategy(name).query(preds, unlabeled, labeled, 0, rng=0)


@pytest.mark.parametrize("options,match", [({"n_neighbors": 0}, "n_neighbors"),
                                           ({"min_cluster_size": True}, "min_cluster_size"),
                                           ({"max_clusters": 0}, "max_clusters"),
                                           ({"kmeans_backend": "lloyd"}, "kmeans_backend"),
                                           ({"knn_backend": "annoy"}, "knn_backend"),
                                           ({"k": 3}, "bad options")])
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        create_strategy("typiclust", **options)
