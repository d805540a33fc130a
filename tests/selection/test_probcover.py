from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.selection.neighbors import knn_graph
from medactive.selection.probcover import (
    ball_graph,
    max_coverage_greedy,
    probcover,
    purity_delta,
)

# 1-D points; with δ = 1.5 the balls are 0:{0,1} 1:{0,1,2} 2:{1,2} 3:{3,4} 4:{3,4} 5:{5}
LINE = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [20.0]])


def _graph(X, delta):
    idx, dist = knn_graph(X.astype(np.float32), X.shape[0] - 1)
    return ball_graph(idx, dist, delta)


def test_ball_graph_by_hand():
    G = _graph(LINE, 1.5).toarray().astype(int)
    expected = np.zeros((6, 6), dtype=int)
    for x, ball in {0: [0, 1], 1: [0, 1, 2], 2: [1, 2], 3: [3, 4], 4: [3, 4], 5: [5]}.items():
        expected[x, ball] = 1
    np.testing.assert_array_equal(G, expected)
    # open balls: a neighbour at exactly δ is outside
    assert _graph(LINE, 1.0).toarray().sum() == 6


def test_greedy_coverage_counted_by_hand():
    G = _graph(LINE, 1.5)
    picks, gains = max_coverage_greedy(G, 3, candidates=np.arange(6))
    assert picks.tolist() == [1, 3, 5]  # covers 3, then 2 (3 before 4), then 1
    assert gains.tolist() == [3.0, 2.0, 1.0]


def test_labeled_balls_start_covered_then_random_once_all_covered():
    G = _graph(LINE, 1.5)
    # point 4 labeled: {3, 4} covered; then 1 covers 3, 5 covers 1, then nothing is left
    picks, gains = max_coverage_greedy(G, 4, candidates=[0, 1, 2, 3, 5], covered_by=[4], rng=0)
    assert picks[:2].tolist() == [1, 5] and gains.tolist() == [3.0, 1.0, 0.0, 0.0]
    assert set(picks[2:].tolist()) <= {0, 2, 3} and len(set(picks.tolist())) == 4
    again, _ = max_coverage_greedy(G, 4, candidates=[0, 1, 2, 3, 5], covered_by=[4], rng=0)
    np.testing.assert_array_equal(picks, again)


def test_purity_delta_by_hand():
    X = np.array([[0.0], [1.0], [2.0], [3.0], [10.0], [11.0], [12.0], [13.0]], np.float32)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    idx, dist = knn_graph(X, 7)
    # distance to the nearest other label r = [10, 9, 8, 7, 7, 8, 9, 10]; purity(δ) = mean(r >= δ)
    assert purity_delta(idx, dist, labels, alpha=1.0) == pytest.approx(7.0)
    assert purity_delta(idx, dist, labels, alpha=0.75) == pytest.approx(8.0)  # 6 of 8 pure
    assert purity_delta(idx, dist, labels, alpha=0.5) == pytest.approx(9.0)
    # no other label among the 2 nearest: r = inf for all, δ capped just above the kNN radius
    idx2, dist2 = knn_graph(X, 2)
    assert purity_delta(idx2, dist2, labels, alpha=0.95) == pytest.approx(2.0)


def test_probcover_one_pick_per_group_with_purity_delta():
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    X = np.concatenate([c + 0.05 * rng.normal(size=(30, 3)) for c in centres])
    pos, gains = probcover(X, 3, rng=0, n_clusters=3)
    assert sorted(p // 30 for p in pos.tolist()) == [0, 1, 2]
    assert gains.sum() == 90  # the three balls cover every point
    labeled = X[:1]
    pos2, _ = probcover(X[30:], 2, X_labeled=labeled, rng=0, n_clusters=3)
    assert sorted(p // 30 for p in pos2.tolist()) == [0, 1]


def test_reproducible_unique_whole_pool():
    rng = np.random.default_rng(1)
    X, lab = rng.normal(size=(40, 5)), rng.normal(size=(5, 5))
    a = probcover(X, 12, X_labeled=lab, rng=3)
    b = probcover(X, 12, X_labeled=lab, rng=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert np.unique(a[0]).size == 12
    assert sorted(probcover(X, 40, X_labeled=lab, rng=0)[0].tolist()) == list(range(40))
    assert probcover(X[:1], 1)[0].tolist() == [0]


def test_errors():
    with pytest.raises(ConfigError, match="budget"):
        probcover(np.zeros((3, 2)), 4)
    with pytest.raises(ValueError, match="X_labeled"):
        probcover(np.zeros((3, 2)), 1, X_labeled=np.zeros((1, 3)))
