"""The ``learning_loss`` strategy: top-b by predicted loss, composable over negative values."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.predictions import ArrayPredictions
from medactive.strategies import create_strategy
from medactive.strategies.learning_loss import predicted_loss_score


def test_score_is_softplus_and_keeps_the_order():
    values = np.array([0.0, -2.0, 3.0, -800.0])
    # log(2), log(1 + e^-2), log(1 + e^3), and an underflow to 0 (still >= 0)
    np.testing.assert_allclose(predicted_loss_score(values),
                               [np.log(2), np.log1p(np.exp(-2)), np.log1p(np.exp(3)), 0.0])
    with pytest.raises(ValueError, match="finite"):
        predicted_loss_score(np.array([np.nan, 1.0]))


def test_top_b_by_predicted_loss_on_unlabeled_only():
    p = ArrayPredictions(predicted_loss=np.array([-3.0, 5.0, -1.0, 2.0, 4.0]))
    result = create_strategy("learning_loss").query(p, np.array([0, 2, 3, 4]), np.array([1]),
                                                    2, rng=0)
    assert result.indices.tolist() == [4, 3]
    np.testing.assert_allclose(result.scores, np.log1p(np.exp([4.0, 2.0])))


def test_power_sampling_over_negative_predicted_losses():
    p = ArrayPredictions(predicted_loss=np.array([-3.0, -5.0, -1.0, -2.0]))
    # the raw field is negative everywhere; the score is not, so power sampling accepts it
    picked = create_strategy("power:learning_loss", beta=1e6).query(
        p, np.arange(4), np.array([], int), 2, rng=0).indices.tolist()
    assert picked == [2, 3]
