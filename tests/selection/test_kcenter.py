from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from medactive.errors import ConfigError
from medactive.selection.kcenter import k_center_greedy


def _brute_force(X, X_labeled, k, metric):
    """k-center greedy on a dense (n + m) x (n + m) distance matrix (the pycls way)."""
    allx = np.concatenate([X, X_labeled])
    D = cdist(allx, allx, metric="euclidean" if metric == "l2" else "cosine")
    n = X.shape[0]
    min_d = D[:n, n:].min(axis=1)
    picks, dists = [], []
    for _ in range(k):
        j = int(np.argmax(min_d))
        picks.append(j)
        dists.append(min_d[j])
        min_d = np.minimum(min_d, D[:n, j])
        min_d[picks] = -1.0
    return picks, dists


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_brute_force(metric, seed):
    rng = np.random.default_rng(seed)
    X, L = rng.normal(size=(80, 5)), rng.normal(size=(6, 5))
    picks, dists = k_center_greedy(X, 15, X_labeled=L, metric=metric, rng=0, chunk_size=7)
    bf_picks, bf_dists = _brute_force(X, L, 15, metric)
    assert picks.tolist() == bf_picks
    np.testing.assert_allclose(dists, bf_dists, atol=1e-9)


def test_by_hand():
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    picks, dists = k_center_greedy(X, 3, X_labeled=np.array([[0.0]]), rng=0)
    assert picks.tolist() == [3, 2, 1]
    np.testing.assert_allclose(dists, [10.0, 2.0, 1.0])


def test_cosine_ignores_scale():
    # same directions at different lengths: cosine picks the orthogonal direction first
    X = np.array([[10.0, 0.0], [0.0, 1.0], [5.0, 0.1]])
    picks, dists = k_center_greedy(X, 1, X_labeled=np.array([[1.0, 0.0]]), metric="cosine")
    assert picks.tolist() == [1] and dists[0] == pytest.approx(1.0)
    assert k_center_greedy(X, 1, X_labeled=np.array([[1.0, 0.0]]))[0].tolist() == [0]


def test_no_labeled_set_starts_at_random_and_is_reproducible():
    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    a, da = k_center_greedy(X, 10, rng=4)
    b, _ = k_center_greedy(X, 10, rng=4)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 10
    assert np.isnan(da[0]) and np.all(np.diff(da[1:]) <= 1e-6)  # radii only shrink


def test_random_projection_keeps_contract():
    X = np.random.default_rng(0).normal(size=(40, 64))
    picks, _ = k_center_greedy(X, 8, X_labeled=X[:0], rng=1, projection_dim=8)
    assert len(set(picks.tolist())) == 8
    assert picks.tolist() == k_center_greedy(X, 8, rng=1, projection_dim=8)[0].tolist()


def test_errors():
    X = np.zeros((3, 2))
    with pytest.raises(ConfigError):
        k_center_greedy(X, 4)
    with pytest.raises(ValueError, match="metric"):
        k_center_greedy(X, 1, metric="manhattan")
    with pytest.raises(ValueError, match="features"):
        k_center_greedy(X, 1, X_labeled=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        k_center_greedy(np.array([[np.nan, 0.0]]), 1)



@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("with_labeled", [True, False])
def test_lookahead_does_not_change_picks(metric, with_labeled):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 8)) + np.repeat(rng.normal(scale=3, size=(5, 8)), 60, axis=0)
    L = rng.normal(size=(4, 8)) if with_labeled else None
    one = k_center_greedy(X, 40, X_labeled=L, metric=metric, rng=0, lookahead=1)
    for lookahead in (2, 16, 500):
        many = k_center_greedy(X, 40, X_labeled=L, metric=metric, rng=0, lookahead=lookahead)
        assert many[0].tolist() == one[0].tolist()
        np.testing.assert_allclose(many[1], one[1], rtol=1e-9, equal_nan=True)
