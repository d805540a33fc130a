from __future__ import annotations

import numpy as np
import pytest

from medactive.tasks.classification import classification_metrics


def test_binary_by_hand():
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.9])  # one positive ranked below one negative: AUC 3/4
    m = classification_metrics(y, np.stack([1 - p1, p1], 1))
    assert m["accuracy"] == pytest.approx(0.5)        # predictions 0,1,0,1
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["auc"] == pytest.approx(0.75)
    assert m["recall_0"] == pytest.approx(0.5) and m["recall_1"] == pytest.approx(0.5)


def test_auc_is_not_flipped():
    y = np.array([0, 1])
    p1 = np.array([0.9, 0.1])  # perfectly wrong ranking
    assert classification_metrics(y, np.stack([1 - p1, p1], 1))["auc"] == pytest.approx(0.0)


def test_multiclass_macro_ovr_and_missing_class():
    y = np.array([0, 1, 2])
    p = np.eye(3) * 0.8 + 0.2 / 3
    m = classification_metrics(y, p / p.sum(1, keepdims=True))
    assert m["accuracy"] == 1.0 and m["auc"] == pytest.approx(1.0)
    m = classification_metrics(np.array([0, 1, 1]), p / p.sum(1, keepdims=True))
    assert np.isnan(m["auc"])  # class 2 absent: AUC undefined, not silently computed


def test_nan_probabilities_rejected():
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics(np.array([0, 1]), np.array([[np.nan, 1.0], [0.5, 0.5]]))
