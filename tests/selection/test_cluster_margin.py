"""Cluster-margin (Citovsky et al. 2021): round-robin over clusters smallest first."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.selection.cluster_margin import agglomerative_labels, cluster_margin, round_robin


def test_round_robin_order_on_a_constructed_clustering():
    # clusters: "a" size 3 (0, 1, 2), "b" size 1 (3), "c" size 2 (4, 5)
    labels = np.array(["a", "a", "a", "b", "c", "c"])
    order = np.arange(6)  # inside a cluster: lower position first
    assert round_robin(labels, 6, rng=0, order=order).tolist() == [3, 4, 0, 5, 1, 2]
    assert round_robin(labels, 4, rng=0, order=order).tolist() == [3, 4, 0, 5]
    # random members: the visit pattern of clusters stays b, c, a, c, a, a
    for seed in range(10):
        picks = round_robin(labels, 6, rng=seed)
        assert labels[picks].tolist() == ["b", "c", "a", "c", "a", "a"]


def test_agglomerative_labels_find_the_blobs():
    X = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]])
    labels = agglomerative_labels(X, 3)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:5])) == 1
    assert len(set(labels.tolist())) == 3


def test_cluster_margin_takes_one_per_cluster_of_the_top_candidates():
    # three tight blobs; the six highest scores are in blobs A (4 points) and B (2 points)
    X = np.array([[0, 0], [0, 0.1], [0.1, 0], [0.1, 0.1], [5, 5], [5, 5.1],
                  [9, 9], [9, 9.1]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.1, 0.0])
    for seed in range(5):
        picks = cluster_margin(X, scores, 2, rng=seed, candidates_per_pick=3)
        assert sum(p < 4 for p in picks) == 1 and sum(p in (4, 5) for p in picks) == 1
        assert picks[0] in (4, 5)  # the smaller cluster first
    # top-k would pick two near-duplicates of blob A
    assert set(np.argsort(-scores)[:2].tolist()) <= {0, 1, 2, 3}


def test_bounded_candidates_reproducible_and_errors():
    rng = np.random.default_rng(0)
    X, scores = rng.normal(size=(300, 4)), rng.random(300)
    a = cluster_margin(X, scores, 5, rng=1, max_candidates=40)
    assert a.tolist() == cluster_margin(X, scores, 5, rng=1, max_candidates=40).tolist()
    assert set(a.tolist()) <= set(np.argsort(-scores)[:40].tolist())
    assert len(set(a.tolist())) == 5
    with pytest.raises(ConfigError, match="candidates_per_pick"):
        cluster_margin(X, scores, 5, rng=0, candidates_per_pick=0)
