"""Dirichlet scores of an evidential head on hand-made parameters."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.scoring.evidential import dirichlet_mutual_information, dirichlet_vacuity


def test_vacuity_is_k_over_s_by_hand():
    alpha = np.array([[1.0, 1.0, 1.0], [10.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    # K / S: 3/3, 3/12, 3/6
    np.testing.assert_allclose(dirichlet_vacuity(alpha), [1.0, 0.25, 0.5])


def _monte_carlo_mi(alpha: np.ndarray, n: int, rng: np.random.Generator) -> float:
    pi = rng.dirichlet(alpha, size=n)  # [n, c] categorical parameters
    mean = pi.mean(axis=0)
    total = -(mean * np.log(mean)).sum()
    expected = -(pi * np.log(np.clip(pi, 1e-300, None))).sum(axis=1).mean()
    return total - expected


@pytest.mark.parametrize("alpha", [[1.0, 1.0], [2.0, 0.5, 3.0], [0.7, 0.7, 0.7, 0.7],
                                   [20.0, 1.0, 1.0]])
def test_mutual_information_matches_monte_carlo(alpha):
    alpha = np.array(alpha)
    rng = np.random.default_rng(0)
    mc = _monte_carlo_mi(alpha, 400_000, rng)
    closed = dirichlet_mutual_information(alpha[None])[0]
    assert closed == pytest.approx(mc, abs=3e-3)


def test_mutual_information_by_hand_and_its_limit():
    # alpha = (1, 1): H(mean) = log 2; E[H] = -2 * 1/2 * (psi(2) - psi(3)) = 1/2
    np.testing.assert_allclose(dirichlet_mutual_information(np.array([[1.0, 1.0]])),
                               [np.log(2) - 0.5])
    # huge evidence: MI -> (K - 1) / (2 S) -> 0
    big = dirichlet_mutual_information(np.array([[1e6, 1e6, 1e6]]))[0]
    assert 0 <= big < 1e-6
    assert big == pytest.approx(2 / (2 * 3e6), rel=1e-3)


def test_scores_refuse_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        dirichlet_vacuity(np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="alpha"):
        dirichlet_mutual_information(np.array([1.0, 2.0]))
