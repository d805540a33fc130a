from __future__ import annotations

import numpy as np
import pytest

from medactive.scoring import class_variance, entropy, least_confidence, margin

# rows: confident, fairly sure, torn between two, uniform over three
P = np.array([[0.98, 0.01, 0.01],
              [0.70, 0.20, 0.10],
              [0.45, 0.45, 0.10],
              [1 / 3, 1 / 3, 1 / 3]])


def test_least_confidence_by_hand():
    np.testing.assert_allclose(least_confidence(P), [0.02, 0.30, 0.55, 2 / 3])


def test_entropy_by_hand():
    expected = [-(0.98 * np.log(0.98) + 2 * 0.01 * np.log(0.01)),
                -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)),
                -(2 * 0.45 * np.log(0.45) + 0.1 * np.log(0.1)),
                np.log(3)]
    np.testing.assert_allclose(entropy(P), expected)
    assert entropy(np.array([[1.0, 0.0]]))[0] == 0.0  # 0 log 0 = 0, no NaN


def test_margin_by_hand_and_ordering():
    np.testing.assert_allclose(margin(P), [1 - 0.97, 1 - 0.5, 1.0, 1.0])
    # baal's check: margins of these rows rank [1, 2, 0] from most to least uncertain
    p = np.array([[0.1, 0.9], [0.5, 0.5], [0.3, 0.7]])
    assert np.argsort(-margin(p), kind="stable").tolist() == [1, 2, 0]


def test_margin_differs_from_least_confidence():
    # same top class probability, different runner-up: only margin tells them apart
    p = np.array([[0.5, 0.25, 0.25], [0.5, 0.45, 0.05]])
    assert least_confidence(p)[0] == least_confidence(p)[1]
    assert margin(p)[1] > margin(p)[0]


def test_class_variance_by_hand():
    # Table 1: -(1/C) sum (p_i - 1/C)^2; one-hot [1, 0]: -((0.5^2 + 0.5^2) / 2) = -0.25
    np.testing.assert_allclose(class_variance(np.array([[1.0, 0.0], [0.5, 0.5]])), [-0.25, 0.0])


@pytest.mark.parametrize("fn", [least_confidence, entropy, margin, class_variance])
def test_segmentation_shape_kept(fn):
    # [n=2, c=2, H=2, W=3] -> [2, 2, 3], each pixel scored like a classification row
    rng = np.random.default_rng(0)
    p1 = rng.uniform(size=(2, 1, 2, 3))
    probas = np.concatenate([p1, 1 - p1], axis=1)
    scores = fn(probas)
    assert scores.shape == (2, 2, 3)
    flat = np.moveaxis(probas, 1, -1).reshape(-1, 2)
    np.testing.assert_allclose(scores.reshape(-1), fn(flat))


@pytest.mark.parametrize("fn", [least_confidence, entropy, margin, class_variance])
def test_nan_rejected(fn):
    with pytest.raises(ValueError, match="NaN"):
        fn(np.array([[0.5, np.nan], [0.5, 0.5]]))


def test_not_probabilities_rejected():
    with pytest.raises(ValueError, match="sum to 1"):
        entropy(np.array([[2.0, 3.0]]))
    with pytest.raises(ValueError, match="2 classes"):
        margin(np.ones((3, 1)))
