"""split_indices: a seeded partition, stratified by class, never splitting a patient."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.data.splits import split_indices
from medactive.errors import DataError


def test_hand_checkable_sizes():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    parts = split_indices(labels, (0.5, 0.5), random_state=0)
    assert [len(p) for p in parts] == [5, 5]
    # stratified: 4 zeros -> 2 + 2, 6 ones -> 3 + 3
    assert [int((labels[p] == 0).sum()) for p in parts] == [2, 2]


def test_partition_sorted_and_reproducible():
    labels = np.arange(100) % 3
    parts = split_indices(labels, (0.7, 0.1, 0.2), random_state=5)
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(100))
    assert all(np.array_equal(p, np.sort(p)) for p in parts)
    again = split_indices(labels, (0.7, 0.1, 0.2), random_state=5)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = split_indices(labels, (0.7, 0.1, 0.2), random_state=6)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))
    assert [len(p) for p in parts] == [70, 10, 20]


def test_groups_never_cross_splits_and_rare_class_reaches_every_split():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), rng.integers(1, 6, size=40))
    labels = np.zeros(groups.size, dtype=int)
    labels[np.searchsorted(groups, [0, 10, 20, 30])] = 1  # 4 patients with a rare lesion
    for seed in range(10):
        parts = split_indices(labels, (0.6, 0.1, 0.3), groups=groups, random_state=seed)
        sets = [set(groups[p]) for p in parts]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        assert all(labels[p].sum() >= 1 for p in parts)
        assert sum(len(p) for p in parts) == groups.size


def test_string_groups_and_fewer_groups_than_splits():
    labels = np.array([0, 0, 1, 1])
    groups = np.array(["p1", "p1", "p2", "p2"])
    parts = split_indices(labels, (0.6, 0.1, 0.3), groups=groups, random_state=0)
    assert sorted(len(p) for p in parts) == [0, 2, 2] or sorted(len(p) for p in parts) == [0, 0, 4]


@pytest.mark.parametrize("fractions", [(0.5, 0.6), (1.2, -0.2), ()])
def test_bad_fractions(fractions):
    with pytest.raises(DataError, match="fractions"):
        split_indices(np.zeros(4), fractions)
