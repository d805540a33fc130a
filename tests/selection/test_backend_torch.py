"""The torch backend of selection (issue 16 part 4): the same kernels on torch tensors pick
the same indices as on numpy arrays, because every random draw stays on the host.

Torch runs on the CPU here (no GPU in the test machine); ``--selection-device cuda`` puts the
same tensors on the GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.predictions import ArrayPredictions
from medactive.selection.embedding import DenseEmbedding, FactorisedEmbedding
from medactive.selection.kcenter import k_center_greedy
from medactive.selection.kmeanspp import kmeans_plusplus
from medactive.strategies import create_strategy
from tests.device_tensor import on_device as _t


def test_kmeanspp_on_four_points_by_hand():
    # two far pairs: max_norm takes (5.1, 5) first; every D² mass then sits on 0 and 1
    X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    got_np, d2_np = kmeans_plusplus(DenseEmbedding(X), 2, rng=0, first="max_norm")
    got_t, d2_t = kmeans_plusplus(DenseEmbedding(_t(X)), 2, rng=0, first="max_norm")
    assert got_np[0] == got_t[0] == 3
    assert got_t.tolist() == got_np.tolist() and isinstance(got_t, np.ndarray)
    np.testing.assert_allclose(d2_t, d2_np, rtol=1e-12)
    assert d2_t[0] == pytest.approx(5.1 ** 2 + 25.0)


@pytest.mark.parametrize("first", ["max_norm", "random"])
@pytest.mark.parametrize("trials,lazy", [(1, 1), (3, 1), (1, 4)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kmeanspp_dense_same_picks_on_numpy_and_torch(first, trials, lazy, dtype):
    X = np.random.default_rng(5).normal(size=(80, 6)).astype(dtype)
    got_np, d2_np = kmeans_plusplus(DenseEmbedding(X), 15, rng=3, first=first,
                                    n_local_trials=trials, lazy_updates=lazy)
    got_t, d2_t = kmeans_plusplus(DenseEmbedding(_t(X)), 15, rng=3, first=first,
                                  n_local_trials=trials, lazy_updates=lazy)
    assert got_t.tolist() == got_np.tolist()
    np.testing.assert_allclose(d2_t, d2_np, rtol=1e-5)


@pytest.mark.parametrize("lazy", [1, 4])
def test_kmeanspp_factorised_badge_same_picks_on_numpy_and_torch(lazy):
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(4), size=70)
    a = p.copy()
    a[np.arange(70), p.argmax(1)] -= 1.0
    h = rng.normal(size=(70, 5)).astype(np.float32)
    got_np, d2_np = kmeans_plusplus(FactorisedEmbedding(a, h), 10, rng=1, lazy_updates=lazy)
    fact = FactorisedEmbedding(_t(a), _t(h))
    assert isinstance(fact.sq_norms(), torch.Tensor)  # the work stays in torch
    got_t, d2_t = kmeans_plusplus(fact, 10, rng=1, lazy_updates=lazy)
    assert got_t.tolist() == got_np.tolist()
    np.testing.assert_allclose(d2_t, d2_np, rtol=1e-5)


def test_kcenter_by_hand_on_torch():
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    idx, dist = k_center_greedy(_t(X), 2, X_labeled=_t(np.array([[0.0]])), rng=0)
    assert idx.tolist() == [3, 2] and dist.tolist() == [10.0, 2.0]


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("labeled", [True, False])
@pytest.mark.parametrize("lookahead", [1, 8])
def test_kcenter_same_picks_on_numpy_and_torch(metric, labeled, lookahead):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(90, 7)).astype(np.float32)
    L = rng.normal(size=(5, 7)).astype(np.float32) if labeled else None
    got_np, d_np = k_center_greedy(X, 12, X_labeled=L, metric=metric, rng=2,
                                   lookahead=lookahead)
    got_t, d_t = k_center_greedy(_t(X), 12, X_labeled=None if L is None else _t(L),
                                 metric=metric, rng=2, lookahead=lookahead)
    assert got_t.tolist() == got_np.tolist()
    np.testing.assert_allclose(d_t, d_np, rtol=1e-5, equal_nan=True)


def test_kcenter_projection_draws_on_the_host():
    X = np.random.default_rng(4).normal(size=(50, 16))
    got_np, _ = k_center_greedy(X, 6, rng=9, projection_dim=4)
    got_t, _ = k_center_greedy(_t(X), 6, rng=9, projection_dim=4)
    assert got_t.tolist() == got_np.tolist()


def _pool(n: int = 60, c: int = 4, d: int = 6):
    rng = np.random.default_rng(21)
    return ArrayPredictions(probas=rng.dirichlet(np.ones(c), size=n),
                            embeddings=rng.normal(size=(n, d)).astype(np.float32))


@pytest.mark.parametrize("name", ["badge", "coreset_l2", "coreset_cosine"])
def test_strategies_pick_the_same_on_the_torch_backend(name):
    unlabeled, labeled = np.arange(8, 60), np.arange(8)
    host = create_strategy(name).query(_pool(), unlabeled, labeled, 9, rng=4)
    pool, moved = _pool(), []
    pool.array_device = lambda x: moved.append(x.shape) or _t(x)  # what --selection-device sets
    dev = create_strategy(name).query(pool, unlabeled, labeled, 9, rng=4)
    assert moved  # the pool went to the (here CPU) torch backend
    assert dev.indices.tolist() == host.indices.tolist()
    np.testing.assert_allclose(dev.scores, host.scores, rtol=1e-5)
