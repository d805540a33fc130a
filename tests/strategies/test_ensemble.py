"""Ensemble and query-by-committee strategies on hand-made member stacks."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions, CachedPredictions
from medactive.strategies import create_strategy

NAMES = ("ensemble_entropy", "ensemble_bald", "qbc_vote_entropy", "qbc_kl")

# [4, 2, 2]: two members per sample
#   0: both [.5, .5]          -> entropy log 2, bald 0, votes agree (0), kl 0
#   1: [1, 0] and [0, 1]      -> entropy log 2, bald log 2, vote entropy log 2, kl log 2
#   2: both [1, 0]            -> 0 everywhere
#   3: [.9, .1] and [.6, .4]  -> mean [.75, .25]: entropy 0.5623, votes agree (0),
#      bald = H(.75) - (H(.9) + H(.6)) / 2 = 0.5623 - (0.3251 + 0.6730) / 2 = 0.0633
MEMBERS = np.stack([np.array([[0.5, 0.5], [1.0, 0.0], [1.0, 0.0], [0.9, 0.1]]),
                    np.array([[0.5, 0.5], [0.0, 1.0], [1.0, 0.0], [0.6, 0.4]])], axis=-1)


@pytest.mark.parametrize("name,first", [("ensemble_entropy", {0, 1}), ("ensemble_bald", {1}),
                                        ("qbc_vote_entropy", {1}), ("qbc_kl", {1})])
def test_the_most_disagreeing_sample_comes_first(name, first):
    preds = ArrayPredictions(member_probas=MEMBERS)
    result = create_strategy(name).query(preds, np.arange(4), np.array([], dtype=np.int64), 1,
                                         rng=0)
    assert int(result.indices[0]) in first


def test_ensemble_bald_ranks_soft_disagreement_above_agreement():
    preds = ArrayPredictions(member_probas=MEMBERS)
    result = create_strategy("ensemble_bald").query(preds, np.array([0, 2, 3]),
                                                    np.array([1]), 1, rng=0)
    assert result.indices.tolist() == [3]
    np.testing.assert_allclose(result.scores, [0.0633], atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_predictions_without_members_are_refused_in_one_line(name):
    # an ensemble of size 1: the task registers no member provider (composed names are
    # refused before training, see tests/strategies/test_ensemble_runs.py)
    preds = CachedPredictions(4, {"probas": lambda idx: np.full((idx.size, 2), 0.5)})
    with pytest.raises(ConfigError, match=f"{name} needs --ensemble-size 2 or more"):
        create_strategy(name).query(preds, np.arange(4), np.array([], dtype=np.int64), 2,
                                    rng=0)
    with pytest.raises(ConfigError, match="needs --ensemble-size 2"):
        create_strategy(name).query(ArrayPredictions(probas=np.full((4, 2), 0.5)),
                                    np.arange(4), np.array([], dtype=np.int64), 2, rng=0)
