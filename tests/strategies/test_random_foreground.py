"""random_foreground: random among predicted-foreground slices/patches, then the rest."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.predictions import ArrayPredictions
from medactive.scoring.foreground import predicted_foreground
from medactive.strategies import create_strategy


def _slices(n, foreground, pixels=4):
    """``[n, 2, 1, pixels]`` probabilities: background everywhere except ``foreground[i]``
    pixels of slice ``i`` (predicted class 1 with probability 0.6)."""
    probas = np.zeros((n, 2, 1, pixels))
    probas[:, 0] = 1.0
    for i, k in foreground.items():
        probas[i, 0, 0, :k], probas[i, 1, 0, :k] = 0.4, 0.6
    return probas


def _query(probas, budget, rng=0, unlabeled=None, labeled=()):
    unlabeled = np.arange(len(probas)) if unlabeled is None else np.asarray(unlabeled)
    return create_strategy("random_foreground").query(
        ArrayPredictions(probas=probas), unlabeled, np.asarray(labeled, dtype=int), budget,
        rng=rng)


def test_score_is_the_foreground_indicator():
    p = np.array([[[0.9, 0.2, 0.5], [0.1, 0.8, 0.5]]])  # [1, c=2, 3 pixels]; a tie is background
    np.testing.assert_array_equal(predicted_foreground(p), [[0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(predicted_foreground(np.array([[0.3, 0.7], [0.6, 0.4]])),
                                  [1.0, 0.0])
    with pytest.raises(ValueError, match="sum to 1"):
        predicted_foreground(np.array([[0.3, 0.3]]))


def test_draws_only_foreground_slices_when_enough():
    probas = _slices(10, {2: 1, 5: 4, 7: 2})
    for seed in range(10):
        result = _query(probas, 2, rng=seed)
        assert set(result.indices.tolist()) <= {2, 5, 7}
        expected = {2: 0.25, 5: 1.0, 7: 0.5}
        assert result.scores.tolist() == [expected[i] for i in result.indices.tolist()]
    picks = {tuple(sorted(_query(probas, 2, rng=s).indices.tolist())) for s in range(30)}
    assert picks == {(2, 5), (2, 7), (5, 7)}  # uniform among them, not the highest fraction


def test_fills_up_at_random_when_too_few():
    probas = _slices(10, {2: 1, 5: 4})
    fills = set()
    for seed in range(20):
        result = _query(probas, 4, rng=seed)
        idx = result.indices.tolist()
        assert len(set(idx)) == 4 and {2, 5} <= set(idx)
        assert idx[:2] in ([2, 5], [5, 2])  # foreground first, then the fill-up
        assert result.scores[2:].tolist() == [0.0, 0.0]
        fills.update(idx[2:])
    assert len(fills) > 4


def test_respects_the_unlabeled_set_and_is_reproducible():
    probas = _slices(10, {1: 2, 2: 1, 5: 4})
    result = _query(probas, 3, unlabeled=[0, 2, 3, 4, 5, 6], labeled=[1])
    assert {2, 5} <= set(result.indices.tolist()) and 1 not in result.indices
    np.testing.assert_array_equal(result.indices,
                                  _query(probas, 3, unlabeled=[0, 2, 3, 4, 5, 6],
                                         labeled=[1]).indices)


def test_classification_treats_class_0_as_background():
    probas = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    for seed in range(5):
        assert sorted(_query(probas, 2, rng=seed).indices.tolist()) == [1, 3]
