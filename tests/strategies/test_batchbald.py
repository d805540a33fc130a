"""The ``batchbald`` strategy: pool-absolute picks, BALD for one pick, no duplicate pairs."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions
from medactive.scoring import bald
from medactive.strategies import create_strategy


def _stack():
    """Pool of 6: 0 is labeled; 2 and 4 are copies with the largest BALD; 5 disagrees
    independently of them; 1 and 3 agree across passes."""
    copy = np.array([[0.99, 0.01, 0.99, 0.01], [0.01, 0.99, 0.01, 0.99]])
    other = np.array([[0.9, 0.9, 0.1, 0.1], [0.1, 0.1, 0.9, 0.9]])
    calm = np.full((2, 4), 0.5)
    return np.stack([copy, calm, copy, calm, copy, other])  # [6, 2, 4]


def test_batchbald_avoids_the_duplicate_that_bald_takes():
    preds = ArrayPredictions(mc_probas=_stack())
    unlabeled, labeled = np.arange(1, 6), np.array([0])
    top = create_strategy("bald").query(preds, unlabeled, labeled, 2, rng=0)
    assert sorted(top.indices.tolist()) == [2, 4]
    batch = create_strategy("batchbald").query(preds, unlabeled, labeled, 2, rng=0)
    assert batch.indices[0] in (2, 4) and batch.indices[1] == 5
    np.testing.assert_allclose(batch.scores[0], bald(_stack())[2], rtol=1e-12)
    assert 0 < batch.scores[1] <= bald(_stack())[5] + 1e-12  # the gain, at most its BALD


def test_one_pick_is_bald_argmax_and_reproducible():
    rng = np.random.default_rng(0)
    mc = rng.dirichlet(np.ones(3), size=(30, 5)).transpose(0, 2, 1)
    preds = ArrayPredictions(mc_probas=mc)
    unlabeled, labeled = np.arange(10, 30), np.arange(10)
    one = create_strategy("batchbald").query(preds, unlabeled, labeled, 1, rng=0)
    ref = create_strategy("bald").query(preds, unlabeled, labeled, 1, rng=0)
    assert one.indices.tolist() == ref.indices.tolist()
    np.testing.assert_allclose(one.scores, ref.scores, rtol=1e-12)
    strategy = create_strategy("batchbald", n_config_samples=32)
    a = strategy.query(preds, unlabeled, labeled, 8, rng=5)
    b = strategy.query(preds, unlabeled, labeled, 8, rng=5)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_segmentation_stacks_are_refused_in_one_line():
    preds = ArrayPredictions(mc_probas=np.full((4, 2, 3, 3, 5), 0.5))
    with pytest.raises(ConfigError, match="classification") as info:
        create_strategy("batchbald").query(preds, np.arange(4), np.array([], int), 2, rng=0)
    assert "\n" not in str(info.value)


def test_options():
    assert create_strategy("batchbald", n_mc_samples=10).n_mc_samples == 10
    for bad in ({"n_mc_samples": 1}, {"n_config_samples": 0}, {"n_candidates": 0},
                {"n_candidates": 2.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            create_strategy("batchbald", **bad)
