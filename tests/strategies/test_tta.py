"""tta_kl: top-b by the mean KL of augmented predictions to their mean."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions
from medactive.strategies import create_strategy


def test_picks_the_samples_whose_augmentations_disagree():
    agree = [[0.9, 0.9], [0.1, 0.1]]
    slightly = [[0.8, 0.6], [0.2, 0.4]]
    contradict = [[1.0, 0.0], [0.0, 1.0]]
    preds = ArrayPredictions(tta_probas=np.array([agree, contradict, slightly, agree]))
    result = create_strategy("tta_kl").query(preds, np.arange(4), np.array([], int), 2, rng=0)
    assert result.indices.tolist() == [1, 2]
    np.testing.assert_allclose(result.scores[0], np.log(2))


def test_reads_only_tta_probas_and_takes_n_augmentations():
    strategy = create_strategy("tta_kl", n_augmentations=4)
    assert strategy.requires == ("tta_probas",) and strategy.n_augmentations == 4
    assert create_strategy("tta_kl").n_augmentations is None
    with pytest.raises(ConfigError, match="n_augmentations"):
        create_strategy("tta_kl", n_augmentations=1)
    assert create_strategy("power:tta_kl", n_augmentations=3).n_augmentations == 3
