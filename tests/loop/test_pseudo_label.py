"""CEAL pseudo-label selection on a hand-made probability table, and its threshold decay."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.loop.pseudo_label import (
    PseudoLabelConfig,
    entropy_threshold,
    select_pseudo_labels,
)

# entropies (natural log), by hand: -sum p ln p
#   row 10: [0.999, 0.001]   -> 0.000999 + 0.006908 = 0.00791
#   row 11: [0.001, 0.999]   -> 0.00791 (same, mirrored)
#   row 12: [0.99, 0.01]     -> 0.01005 + 0.04605 = 0.0561
#   row 13: [0.0001, 0.9999] -> 0.000921 + 0.0001 = 0.00102
#   row 14: [0.5, 0.5]       -> ln 2 = 0.693
PROBAS = np.array([[0.999, 0.001], [0.001, 0.999], [0.99, 0.01], [0.0001, 0.9999], [0.5, 0.5]])
UNLABELED = np.array([10, 11, 12, 13, 14])


def test_threshold_keeps_low_entropy_rows_most_confident_first():
    idx, labels = select_pseudo_labels(PROBAS, UNLABELED, threshold=0.05)
    # 0.00102 < 0.00791 = 0.00791 (tie: lower index first); 0.0561 and 0.693 are above 0.05
    assert idx.tolist() == [13, 10, 11]
    assert labels.tolist() == [1, 0, 1]


def test_queried_batch_is_excluded():
    idx, labels = select_pseudo_labels(PROBAS, UNLABELED, threshold=0.05, exclude_idx=[11, 14])
    assert idx.tolist() == [13, 10] and labels.tolist() == [1, 0]


def test_cap_keeps_the_most_confident():
    idx, labels = select_pseudo_labels(PROBAS, UNLABELED, threshold=0.05, max_n=1)
    assert idx.tolist() == [13] and labels.tolist() == [1]
    idx, _ = select_pseudo_labels(PROBAS, UNLABELED, threshold=1.0, max_n=4)
    assert idx.tolist() == [13, 10, 11, 12]  # row 14 (ln 2) is the least confident


def test_threshold_is_strict_and_zero_selects_nothing():
    assert select_pseudo_labels(PROBAS, UNLABELED, threshold=0.001)[0].tolist() == []
    assert select_pseudo_labels(PROBAS, UNLABELED, threshold=0.0)[0].tolist() == []
    assert select_pseudo_labels(PROBAS[:0], UNLABELED[:0], threshold=1.0)[0].size == 0


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="one row per"):
        select_pseudo_labels(PROBAS, UNLABELED[:3], threshold=0.05)


def test_threshold_decays_linearly_per_round_and_stops_at_zero():
    assert entropy_threshold(0.005, 0.00033, 0) == pytest.approx(0.005)
    assert entropy_threshold(0.005, 0.00033, 1) == pytest.approx(0.00467)
    assert entropy_threshold(0.005, 0.00033, 3) == pytest.approx(0.00401)
    assert entropy_threshold(0.005, 0.00033, 100) == 0.0  # 0.005 - 0.033 < 0
    config = PseudoLabelConfig(entropy=0.05, decay=0.01)
    assert [round(config.threshold(r), 6) for r in range(4)] == [0.05, 0.04, 0.03, 0.02]


def test_config_defaults_are_the_papers_and_bad_values_are_refused():
    assert PseudoLabelConfig() == PseudoLabelConfig(entropy=0.005, decay=0.00033, max=None)
    assert PseudoLabelConfig.from_dict({"max": 5}).to_dict() == {
        "entropy": 0.005, "decay": 0.00033, "max": 5}
    with pytest.raises(ConfigError, match="entropy"):
        PseudoLabelConfig(entropy=-1.0)
    with pytest.raises(ConfigError, match="max"):
        PseudoLabelConfig(max=0)
    with pytest.raises(ConfigError, match="unknown key"):
        PseudoLabelConfig.from_dict({"threshold": 0.1})
