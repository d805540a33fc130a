"""The torch backend of TypiClust's kNN and typicality (issue 16 part 4): exact brute-force
neighbours in row blocks on the tensors' device give the numpy (FAISS) path's distances and
the same picks on pools without near-ties.

Torch runs on the CPU here; ``--selection-device cuda`` puts the same tensors on the GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.predictions import ArrayPredictions
from medactive.scoring._arrays import to_host
from medactive.selection import neighbors
from medactive.selection.typiclust import typiclust, typiclust_stacked
from medactive.strategies import create_strategy
from tests.device_tensor import on_device as _t

LINE = np.array([[0.0], [1.0], [3.0], [10.0]], dtype=np.float32)


def test_knn_graph_on_four_points_by_hand():
    idx, dist = neighbors.knn_graph(_t(LINE), 2)
    assert isinstance(dist, torch.Tensor)  # the graph stays on the device
    assert to_host(idx).tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]
    assert to_host(dist).tolist() == [[1.0, 3.0], [1.0, 2.0], [2.0, 3.0], [7.0, 9.0]]


def test_knn_graph_in_blocks_matches_faiss(monkeypatch):
    X = np.random.default_rng(3).normal(size=(70, 5)).astype(np.float32)
    idx_np, d_np = neighbors.knn_graph(X, 6)
    monkeypatch.setattr(neighbors, "DEVICE_BLOCK_ELEMENTS", 70 * 8)  # 8 rows a block
    idx_t, d_t = neighbors.knn_graph(_t(X), 6)
    assert to_host(idx_t).tolist() == idx_np.tolist()
    np.testing.assert_allclose(to_host(d_t), d_np, rtol=1e-5, atol=1e-6)


def test_knn_graph_duplicates_exclude_self_only():
    X = np.array([[0.0], [0.0], [5.0]], dtype=np.float32)
    idx, dist = neighbors.knn_graph(_t(X), 1)
    assert to_host(idx)[:, 0].tolist() == [1, 0, 0]  # never itself; ties: the lower row
    assert to_host(dist)[:, 0].tolist() == [0.0, 0.0, 5.0]


def test_knn_among_by_hand_with_positions_and_self_positions():
    got = neighbors.knn_among(_t(LINE), _t(LINE[[2]]), np.array([2]), 2)
    assert to_host(got).tolist() == [[2.0, 3.0]]
    # X is a sample (rows 0 and 2) of the four queries: query 0 is row 0, query 2 is row 1
    got = neighbors.knn_among(_t(LINE[[0, 2]]), _t(LINE), None, 1,
                              self_positions=np.array([0, 2]))
    assert to_host(got)[:, 0].tolist() == [3.0, 1.0, 3.0, 7.0]


def test_typicality_on_the_device():
    X = np.random.default_rng(8).normal(size=(40, 3)).astype(np.float32)
    got = neighbors.typicality(_t(X), 5)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(to_host(got), neighbors.typicality(X, 5), rtol=1e-5)


def test_typiclust_three_points_a_group_by_hand():
    X = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    pos, scores = typiclust(_t(X.astype(np.float32)), 2, rng=0, min_cluster_size=3)
    assert sorted(pos.tolist()) == [1, 4] and isinstance(pos, np.ndarray)
    np.testing.assert_allclose(scores, 10.0, rtol=1e-5)  # mean distance 0.1 to both others


def _blobs(n_per: int = 30, d: int = 4, centres: int = 4, seed: int = 13) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu = rng.normal(scale=8.0, size=(centres, d))
    X = np.concatenate([m + rng.normal(size=(n_per, d)) for m in mu])
    return X.astype(np.float32)


@pytest.mark.parametrize("cap", [None, 8])  # 8: every cluster is "large" (estimate + fill)
@pytest.mark.parametrize("n_candidates", [120, 100])  # with and without labeled rows
def test_typiclust_same_picks_on_numpy_and_torch(cap, n_candidates):
    X = _blobs()
    kw = {"rng": 5, "n_neighbors": 6, "max_clusters": 6, "typicality_candidates": cap}
    got_np, s_np = typiclust_stacked(X, n_candidates, 9, **kw)
    got_t, s_t = typiclust_stacked(_t(X), n_candidates, 9, **kw)
    assert got_t.tolist() == got_np.tolist()
    np.testing.assert_allclose(s_t, s_np, rtol=1e-5)


def test_typiclust_fallback_over_all_points_on_the_device():
    X = _blobs(n_per=10)
    kw = {"rng": 1, "n_neighbors": 4, "max_clusters": 4, "min_cluster_size": 1000}  # none eligible
    got_np, s_np = typiclust_stacked(X, 40, 5, **kw)
    got_t, s_t = typiclust_stacked(_t(X), 40, 5, **kw)
    assert got_t.tolist() == got_np.tolist()
    np.testing.assert_allclose(s_t, s_np, rtol=1e-5)


def test_typiclust_strategy_picks_the_same_on_the_torch_backend():
    X = _blobs()
    unlabeled, labeled = np.arange(10, 120), np.arange(10)
    kw = {"n_neighbors": 6, "max_clusters": 8, "typicality_candidates": 16}
    host = create_strategy("typiclust", **kw).query(ArrayPredictions(embeddings=X), unlabeled,
                                                    labeled, 7, rng=2)
    pool, moved = ArrayPredictions(embeddings=X), []
    pool.array_device = lambda x: moved.append(x.shape) or _t(x)  # what --selection-device sets
    dev = create_strategy("typiclust", **kw).query(pool, unlabeled, labeled, 7, rng=2)
    assert moved == [(120, 4)]  # the stacked embeddings went to the device once
    assert dev.indices.tolist() == host.indices.tolist()
    np.testing.assert_allclose(dev.scores, host.scores, rtol=1e-5)
