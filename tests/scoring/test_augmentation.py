"""TTA-KL on hand-made augmentation stacks."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.scoring import bald
from medactive.scoring.augmentation import tta_kl


def test_identical_predictions_score_zero():
    stack = np.array([[[0.7, 0.7, 0.7], [0.3, 0.3, 0.3]]])  # [1, 2, 3]: three equal views
    np.testing.assert_allclose(tta_kl(stack), [0.0], atol=1e-12)


def test_two_views_by_hand():
    # views (0.8, 0.2) and (0.4, 0.6): mean (0.6, 0.4)
    stack = np.array([[[0.8, 0.4], [0.2, 0.6]]])
    kl1 = 0.8 * np.log(0.8 / 0.6) + 0.2 * np.log(0.2 / 0.4)
    kl2 = 0.4 * np.log(0.4 / 0.6) + 0.6 * np.log(0.6 / 0.4)
    np.testing.assert_allclose(tta_kl(stack), [(kl1 + kl2) / 2])
    np.testing.assert_allclose(tta_kl(stack), [0.0863], atol=1e-4)


def test_contradicting_views_give_log2_and_zero_probabilities_are_fine():
    stack = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    np.testing.assert_allclose(tta_kl(stack), [np.log(2)])


def test_pixel_stack_keeps_spatial_axes_and_equals_bald():
    rng = np.random.default_rng(0)
    e = np.exp(rng.normal(size=(3, 4, 2, 5, 6)))
    stack = e / e.sum(axis=1, keepdims=True)
    scores = tta_kl(stack)
    assert scores.shape == (3, 2, 5)
    mean = stack.mean(axis=-1, keepdims=True)
    by_definition = (stack * np.log(stack / mean)).sum(axis=1).mean(axis=-1)
    np.testing.assert_allclose(scores, by_definition, atol=1e-12)
    np.testing.assert_allclose(scores, bald(stack), atol=1e-12)


def test_bad_stacks_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="tta_probas"):
        tta_kl(np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="tta_probas"):
        tta_kl(np.full((1, 2, 3), 0.7))
