"""The evidential strategies pick the largest Dirichlet uncertainty."""

from __future__ import annotations

import numpy as np

from medactive.predictions import ArrayPredictions
from medactive.strategies import create_strategy


def test_vacuity_and_epistemic_pick_the_weakest_evidence():
    alpha = np.array([[50.0, 1.0], [1.0, 1.0], [5.0, 5.0], [100.0, 100.0]])
    preds = ArrayPredictions(dirichlet_alpha=alpha)
    pool = np.arange(4)
    # K/S: 2/51, 1, 0.2, 0.01
    result = create_strategy("evidential").query(preds, pool, np.array([], int), 2, rng=0)
    assert result.indices.tolist() == [1, 2]
    np.testing.assert_allclose(result.scores, [1.0, 0.2])
    epi = create_strategy("evidential_epistemic").query(preds, pool, np.array([], int), 1, rng=0)
    assert epi.indices.tolist() == [1]
    np.testing.assert_allclose(epi.scores, [np.log(2) - 0.5])
