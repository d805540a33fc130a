"""random_balanced: the budget split evenly over predicted classes, random inside each."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions
from medactive.selection.stratified import balanced_quotas, stratified_random
from medactive.strategies import create_strategy

P0, P1, P2 = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]


def _query(probas, budget, rng=0, unlabeled=None, labeled=()):
    probas = np.asarray(probas, dtype=float)
    unlabeled = np.arange(len(probas)) if unlabeled is None else np.asarray(unlabeled)
    return create_strategy("random_balanced").query(
        ArrayPredictions(probas=probas), unlabeled, np.asarray(labeled, dtype=int), budget,
        rng=rng)


def test_quotas_by_hand():
    assert balanced_quotas(np.array([10, 10, 10]), 9, rng=0).tolist() == [3, 3, 3]
    # a class with one sample gives the rest of its share to the others
    assert balanced_quotas(np.array([1, 10, 10]), 9, rng=0).tolist() == [1, 4, 4]
    # two small classes, then the big one takes everything left
    assert balanced_quotas(np.array([2, 1, 20]), 12, rng=0).tolist() == [2, 1, 9]
    # an empty group gets nothing
    assert balanced_quotas(np.array([0, 5, 5]), 4, rng=0).tolist() == [0, 2, 2]
    assert balanced_quotas(np.array([3, 3]), 6, rng=0).tolist() == [3, 3]


def test_remainder_goes_to_random_classes():
    seen = set()
    for seed in range(40):
        q = balanced_quotas(np.array([10, 10, 10]), 4, rng=seed)
        assert sorted(q.tolist()) == [1, 1, 2]
        seen.add(int(np.argmax(q)))
    assert seen == {0, 1, 2}  # each class gets the extra pick for some seed
    with pytest.raises(ConfigError):
        balanced_quotas(np.array([1, 2]), 4, rng=0)
    with pytest.raises(ValueError, match="sizes"):
        balanced_quotas(np.array([1, -2]), 1, rng=0)


def test_stratified_random_draws_within_groups():
    groups = np.array(["a"] * 6 + ["b"] * 2 + ["c"])
    for seed in range(10):
        pos = stratified_random(groups, 6, rng=seed)
        assert np.unique(pos).size == 6
        # c has 1, b has 2, a takes the remaining 3
        assert sorted(groups[pos].tolist()) == ["a", "a", "a", "b", "b", "c"]


def test_strategy_balances_predicted_classes():
    # 12 predicted class 0, 3 predicted class 1, 1 predicted class 2
    probas = [P0] * 12 + [P1] * 3 + [P2]
    for seed in range(5):
        result = _query(probas, 7, rng=seed)
        classes = np.asarray(probas)[result.indices].argmax(axis=1)
        assert np.bincount(classes, minlength=3).tolist() == [3, 3, 1]
        assert np.isnan(result.scores).all()


def test_only_classes_present_in_the_unlabeled_pool_count():
    probas = [P0] * 6 + [P1] * 6 + [P2] * 2
    # the class-2 samples (12, 13) are labelled: the budget splits over classes 0 and 1
    result = _query(probas, 4, unlabeled=np.arange(12), labeled=[12, 13])
    classes = np.asarray(probas)[result.indices].argmax(axis=1)
    assert np.bincount(classes, minlength=3).tolist() == [2, 2, 0]


def test_random_inside_a_class_and_reproducible():
    probas = [P0] * 20 + [P1] * 20
    picks = {tuple(sorted(_query(probas, 2, rng=s).indices.tolist())) for s in range(30)}
    assert len(picks) > 10  # not always the same two samples
    np.testing.assert_array_equal(_query(probas, 5, rng=4).indices,
                                  _query(probas, 5, rng=4).indices)


def test_segmentation_outputs_use_the_pixel_mean():
    # [n, c, h, w]: slice 0 is mostly class 1, the others mostly background
    probas = np.zeros((4, 2, 1, 2))
    probas[:, 0] = 1.0
    probas[0, :, 0, :] = [[0.2, 0.2], [0.8, 0.8]]
    result = _query(probas, 2, rng=0)
    assert 0 in result.indices.tolist()  # one pick per predicted class


def test_nan_probabilities_give_clear_error():
    probas = np.array([P0, P1, [np.nan, 0.5, 0.5]])
    with pytest.raises(ValueError, match="NaN"):
        _query(probas, 1)
