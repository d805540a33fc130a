from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from medactive.selection import neighbors
from medactive.selection.neighbors import knn_graph, typicality


def test_faiss_exact_equals_brute_force():
    X = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    idx, dist = knn_graph(X, 4)
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    np.testing.assert_array_equal(idx, np.argsort(D, axis=1)[:, :4])
    np.testing.assert_allclose(dist, np.sort(D, axis=1)[:, :4], rtol=1e-4, atol=1e-5)


def test_duplicates_never_list_self():
    X = np.array([[0.0], [0.0], [0.0], [5.0]], dtype=np.float32)
    idx, dist = knn_graph(X, 2)
    assert not (idx == np.arange(4)[:, None]).any()
    assert dist[0].tolist() == [0.0, 0.0]


def test_faiss_index_is_freed_before_the_results_are_trimmed(monkeypatch):
    # issue 12, probcover at n = 10^6: the index (its own 2 GB copy of X) stayed alive while
    # the [n, k] results were copied and trimmed, pushing the total past 8 GB
    import weakref

    import faiss

    made = []

    class Tracked(faiss.IndexFlatL2):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(weakref.ref(self))

    real = neighbors._drop_self

    def check(*args):
        assert made and made[0]() is None, "the FAISS index is still alive"
        return real(*args)

    monkeypatch.setattr(faiss, "IndexFlatL2", Tracked)
    monkeypatch.setattr(neighbors, "_drop_self", check)
    X = np.array([[0.0], [1.0], [3.0], [10.0]], dtype=np.float32)
    assert knn_graph(X, 1)[0][:, 0].tolist() == [1, 0, 1, 2]


def test_knn_graph_makes_no_extra_copies_of_the_results():
    # the search's [n, k+1] distances and ids (12 B an entry), the trimmed output (12 B) and
    # two bool masks (2 B): 26 B an entry; the old sqrt and astype copies added 16 B more
    import tracemalloc

    n, k = 20_000, 50
    X = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
    tracemalloc.start()
    try:
        knn_graph(X, k)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * n * (k + 1), (peak, 32 * n * (k + 1))


def test_typicality_by_hand():
    X = np.array([[0.0], [1.0], [2.0], [10.0]], dtype=np.float32)
    # 2 nearest: point 1 -> {0, 2} mean 1; point 3 -> {2, 1} mean 8.5
    np.testing.assert_allclose(typicality(X, 2)[[1, 3]], [1.0, 1 / 8.5], rtol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("MEDACTIVE_RUN_SLOW"),
                    reason="pynndescent compiles with numba (~1 min); set MEDACTIVE_RUN_SLOW=1")
def test_pynndescent_backend_agrees_on_easy_data():
    pytest.importorskip("pynndescent")
    X = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    approx, _ = knn_graph(X, 5, backend="pynndescent", rng=0)
    exact, _ = knn_graph(X, 5)
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx, exact)])
    assert recall > 0.9


def test_errors():
    with pytest.raises(ValueError, match="n_neighbors"):
        knn_graph(np.zeros((3, 2)), 3)
    with pytest.raises(ValueError, match="backend"):
        knn_graph(np.zeros((3, 2)), 1, backend="annoy")
