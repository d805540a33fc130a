"""ECE and temperature scaling on hand-made probabilities."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medactive.calibration import (
    apply_temperature,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    log_probas,
    negative_log_likelihood,
)


def test_ece_of_a_hand_made_case():
    # 15 bins of width 1/15; confidences and the bins they fall in:
    #   0.95 correct -> (14/15, 1]        |1 - 0.95|             = 0.05  (1 sample)
    #   0.90 wrong, 0.92 correct -> (13/15, 14/15]: acc 0.5, conf 0.91 -> 0.41 (2 samples)
    #   0.70 correct -> (10/15, 11/15]   |1 - 0.70|             = 0.30  (1 sample)
    #   0.55 wrong   -> (8/15, 9/15]     |0 - 0.55|             = 0.55  (1 sample)
    # ECE = (0.05 + 2 * 0.41 + 0.30 + 0.55) / 5 = 1.72 / 5 = 0.344
    p = np.array([[0.95, 0.05], [0.90, 0.10], [0.08, 0.92], [0.30, 0.70], [0.55, 0.45]])
    y = np.array([0, 1, 1, 1, 1])
    assert expected_calibration_error(p, y) == pytest.approx(0.344)
    # one bin: |accuracy - mean confidence| = |3/5 - 4.02/5| = 0.204
    assert expected_calibration_error(p, y, n_bins=1) == pytest.approx(0.204)


def test_ece_matches_the_explicit_bin_loop():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (200, 3))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 3, 200)
    conf, correct = p.max(1), p.argmax(1) == y
    edges = np.linspace(0, 1, 16)
    expected = sum(abs(correct[m].mean() - conf[m].mean()) * m.mean()
                   for lo, hi in itertools.pairwise(edges)
                   if (m := (conf > lo) & (conf <= hi)).any())
    assert expected_calibration_error(p, y) == pytest.approx(expected)


def test_a_perfectly_calibrated_bin_has_no_error_and_bad_input_is_refused():
    # confidence 0.75 on 4 samples, 3 of them right
    p = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(p, np.array([0, 0, 0, 1])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"\[n, c\]"):
        expected_calibration_error(p, np.array([0, 1]))
    with pytest.raises(ValueError, match="class indices"):
        expected_calibration_error(p, np.array([0, 0, 0, 2]))


def test_nll_and_temperature_by_hand():
    # uniform probabilities: NLL = log 2 whatever T
    z = log_probas(np.array([[0.5, 0.5]]))
    assert negative_log_likelihood(z, np.array([0])) == pytest.approx(np.log(2))
    # T = 2 on logits (2, 0): softmax(1, 0) = (e/(e+1), 1/(e+1))
    q = apply_temperature(np.array([[2.0, 0.0]]), 2.0)
    assert q[0, 0] == pytest.approx(np.e / (np.e + 1))


def _over_confident():
    """20 samples at 99 % confidence, 6 of them wrong (a 70 % accurate model)."""
    y = np.array([0, 1] * 10)
    pred = y.copy()
    pred[:6] = 1 - pred[:6]
    p = np.where(np.eye(2)[pred] == 1, 0.99, 0.01)
    return p, y


def test_temperature_scaling_softens_an_over_confident_model_and_keeps_its_classes():
    p, y = _over_confident()
    cal = calibrate(p, y)
    assert cal.temperature > 1
    assert cal.nll_calibrated < cal.nll
    assert cal.ece_calibrated < cal.ece
    assert cal.ece == pytest.approx(0.99 - 0.7)
    scaled = apply_temperature(log_probas(p), cal.temperature)
    assert np.array_equal(scaled.argmax(1), p.argmax(1))
    # with two confidence levels the optimum makes the confidence the accuracy: 0.7
    assert scaled.max(1) == pytest.approx(np.full(20, 0.7), abs=1e-3)
    # the fitted T is the minimum of the NLL
    z = log_probas(p)
    t = fit_temperature(z, y)
    best = negative_log_likelihood(z, y, t)
    assert best <= negative_log_likelihood(z, y, t * 1.1)
    assert best <= negative_log_likelihood(z, y, t / 1.1)
