from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions
from medactive.strategies import create_strategy, strategy_descriptions


def _two_directions(seed=0):
    # rows 0..19 near (1, 0, 0), rows 20..39 near (0, 1, 0): two classes by cosine
    rng = np.random.default_rng(seed)
    base = np.repeat(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), 20, axis=0)
    return base + rng.normal(0, 0.05, (40, 3))


def test_registered_defaults():
    assert "delta" in strategy_descriptions()["probcover"]
    s = create_strategy("probcover")
    assert (s.delta, s.alpha, s.n_clusters, s.max_neighbors) == (None, 0.95, 10, 50)
    assert s.requires == ("embeddings",)


def test_coverage_counted_by_hand_with_a_given_delta():
    # unit vectors; rows 0-2 within 0.1 of each other, rows 3-4 too, groups 1.4 apart
    emb = np.array([[1.0, 0.0], [1.0, 0.05], [1.0, -0.05], [0.0, 1.0], [0.05, 1.0]])
    preds = ArrayPredictions(embeddings=emb)
    r = create_strategy("probcover", delta=0.2).query(preds, np.arange(5), np.array([], int),
                                                      2, rng=0)
    assert r.indices.tolist() == [0, 3] and r.scores.tolist() == [3.0, 2.0]
    # row 1 labeled: its ball {0, 1, 2} is covered, so the only gain left is {3, 4}, by 3 or
    # 4 (a tie: the first in unlabeled_idx order)
    r = create_strategy("probcover", delta=0.2).query(preds, np.array([4, 3, 2, 0]),
                                                      np.array([1]), 1, rng=0)
    assert r.indices.tolist() == [4] and r.scores.tolist() == [2.0]


def test_purity_delta_covers_each_class_with_the_class_count():
    preds = ArrayPredictions(embeddings=_two_directions())
    r = create_strategy("probcover", n_clusters=2).query(preds, np.arange(40),
                                                         np.array([], int), 2, rng=0)
    assert sorted(i // 20 for i in r.indices.tolist()) == [0, 1]
    assert r.scores.sum() == 40


@pytest.mark.parametrize("options,match", [({"delta": 0}, "delta"), ({"delta": "x"}, "delta"),
                                           ({"alpha": 1.5}, "alpha"),
                                           ({"n_clusters": 0}, "n_clusters"),
                                           ({"max_neighbors": 0}, "max_neighbors"),
                                           ({"kmeans_backend": "x"}, "kmeans_backend"),
                                           ({"knn_backend": "x"}, "knn_backend")])
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        create_strategy("probcover", **options)
