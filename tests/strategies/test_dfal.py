"""DFAL as a strategy: smallest DeepFool distance first, a positive score for the samplers."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.predictions import ArrayPredictions
from medactive.strategies import create_strategy
from medactive.strategies.registry import list_scores


def test_smallest_distance_first_with_a_positive_score():
    preds = ArrayPredictions(dfal_distance=np.array([0.5, 0.1, 2.0, 0.0, np.inf]))
    result = create_strategy("dfal").query(preds, np.arange(5), np.array([], int), 5, rng=0)
    assert result.indices.tolist() == [3, 1, 0, 2, 4]
    np.testing.assert_allclose(result.scores, [1.0, 1 / 1.1, 1 / 1.5, 1 / 3, 0.0])
    assert "dfal" in list_scores()
    drawn = create_strategy("power:dfal", beta=1.0).query(preds, np.arange(5),
                                                          np.array([], int), 2, rng=0)
    assert 4 not in drawn.indices.tolist()  # zero weight: nothing can flip it


def test_bad_distances_are_refused():
    preds = ArrayPredictions(dfal_distance=np.array([0.5, -1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        create_strategy("dfal").query(preds, np.arange(2), np.array([], int), 1, rng=0)
