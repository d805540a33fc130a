from __future__ import annotations

import numpy as np
import pytest

from medactive.scoring import bald, mc_entropy, mean_variance


def _stack(*passes):
    """[n, c, t] from t arrays of shape [n, c]."""
    return np.stack([np.asarray(p, dtype=float) for p in passes], axis=-1)


# sample 0: two passes agree and are sure; 1: they disagree completely; 2: both unsure
MC = _stack([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]],
            [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])


def test_bald_by_hand():
    # disagreeing confident passes: H(mean) = log 2, mean H = 0 -> log 2
    # both unsure: H(mean) = log 2 = mean H -> 0 (aleatoric, not epistemic)
    np.testing.assert_allclose(bald(MC), [0.0, np.log(2), 0.0], atol=1e-12)


def test_mc_entropy_by_hand():
    np.testing.assert_allclose(mc_entropy(MC), [0.0, np.log(2), np.log(2)], atol=1e-12)


def test_mean_variance_by_hand():
    # sample 1: class 0 takes 1 and 0 -> population variance 0.25, same for class 1 -> 0.25
    np.testing.assert_allclose(mean_variance(MC), [0.0, 0.25, 0.0])
    # three passes, p0 = 0.2, 0.5, 0.8: variance 0.06 for both classes
    three = _stack([[0.2, 0.8]], [[0.5, 0.5]], [[0.8, 0.2]])
    np.testing.assert_allclose(mean_variance(three), [0.06])


def test_bald_is_between_zero_and_total_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4, 7))
    mc = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    b, h = bald(mc), mc_entropy(mc)
    assert np.all(b >= 0) and np.all(b <= h + 1e-12)


@pytest.mark.parametrize("fn", [bald, mc_entropy, mean_variance])
def test_segmentation_stack(fn):
    # [n=2, c=2, H=2, W=2, t=3] -> [2, 2, 2]; pixel (0, 0) of sample 1 = the disagreeing row
    mc = np.full((2, 2, 2, 2, 3), 0.5)
    mc[1, :, 0, 0, :] = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    scores = fn(mc)
    assert scores.shape == (2, 2, 2)
    np.testing.assert_allclose(scores[1, 0, 0], fn(mc[1:, :, 0, 0, :])[0])


@pytest.mark.parametrize("fn", [bald, mc_entropy, mean_variance])
def test_bad_input(fn):
    with pytest.raises(ValueError, match="NaN"):
        fn(np.full((1, 2, 3), np.nan))
    with pytest.raises(ValueError, match=r"\[n, c, \.\.\., t\]"):
        fn(np.array([[0.5, 0.5]]))
