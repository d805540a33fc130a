from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.selection.embedding import DenseEmbedding, FactorisedEmbedding
from medactive.selection.kmeanspp import kmeans_plusplus


def _reference(X: np.ndarray, k: int, rng: np.random.Generator, first: str) -> list[int]:
    """Plain D² sampling on a materialised matrix, written the obvious way."""
    n = X.shape[0]
    picks = [int(np.argmax((X ** 2).sum(1))) if first == "max_norm" else int(rng.integers(n))]
    closest = ((X - X[picks[0]]) ** 2).sum(1)
    closest[picks[0]] = 0.0
    for _ in range(1, k):
        cumulative = np.cumsum(closest)
        pick = int(np.searchsorted(cumulative, rng.random(1) * cumulative[-1], side="right")[0])
        picks.append(pick)
        closest = np.minimum(closest, ((X - X[pick]) ** 2).sum(1))
        closest[pick] = 0.0
    return picks


@pytest.mark.parametrize("first", ["max_norm", "random"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_factorised_selects_what_materialised_selects(first, seed):
    rng = np.random.default_rng(100 + seed)
    a, h = rng.normal(size=(60, 4)), rng.normal(size=(60, 6))
    fact = FactorisedEmbedding(a, h)
    dense = DenseEmbedding(fact.to_dense())
    got_f, d2_f = kmeans_plusplus(fact, 12, rng=seed, first=first)
    got_d, d2_d = kmeans_plusplus(dense, 12, rng=seed, first=first)
    assert got_f.tolist() == got_d.tolist()
    np.testing.assert_allclose(d2_f, d2_d, rtol=1e-8)
    assert got_f.tolist() == _reference(dense.X, 12, np.random.default_rng(seed), first)
    assert len(set(got_f.tolist())) == 12


def test_local_trials_match_between_factorised_and_dense():
    rng = np.random.default_rng(5)
    fact = FactorisedEmbedding(rng.normal(size=(40, 3)), rng.normal(size=(40, 5)))
    dense = DenseEmbedding(fact.to_dense())
    a, _ = kmeans_plusplus(fact, 10, rng=3, n_local_trials=4)
    b, _ = kmeans_plusplus(dense, 10, rng=3, n_local_trials=4)
    assert a.tolist() == b.tolist()


def test_well_separated_clusters_one_seed_each():
    # three tight clusters far apart: D² sampling picks one point of each (probability ~1)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    X = np.repeat(centres, 5, axis=0) + np.random.default_rng(0).normal(scale=0.01, size=(15, 2))
    idx, d2 = kmeans_plusplus(DenseEmbedding(X), 3, rng=0)
    assert sorted(i // 5 for i in idx) == [0, 1, 2]
    assert np.all(d2[1:] > 5000)


def test_duplicates_still_give_distinct_picks():
    X = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]])
    idx, d2 = kmeans_plusplus(DenseEmbedding(X), 4, rng=0, first="max_norm")
    assert sorted(idx.tolist()) == [0, 1, 2, 3]
    assert d2[2] == 0.0 and d2[3] == 0.0  # the last two coincide with earlier picks


def test_same_seed_same_result_and_errors():
    X = np.random.default_rng(1).normal(size=(30, 3))
    emb = DenseEmbedding(X)
    assert (kmeans_plusplus(emb, 5, rng=7)[0] == kmeans_plusplus(emb, 5, rng=7)[0]).all()
    with pytest.raises(ConfigError):
        kmeans_plusplus(emb, 31, rng=0)
    with pytest.raises(ValueError, match="first"):
        kmeans_plusplus(emb, 2, rng=0, first="mean")
