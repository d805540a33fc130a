"""Committee scores on hand-made member stacks ``[n, c, m]`` (values worked out by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.scoring import bald
from medactive.scoring.committee import (
    ensemble_bald,
    ensemble_entropy,
    mean_kl_to_consensus,
    vote_entropy,
)

LOG2 = np.log(2.0)


def _stack(*members):
    """``[n, c, m]`` from ``m`` member arrays ``[n, c]``."""
    return np.stack([np.asarray(p, dtype=float) for p in members], axis=-1)


# sample 0: two members, both [0.5, 0.5]; sample 1: [1, 0] and [0, 1]; sample 2: both [1, 0]
STACK = _stack([[0.5, 0.5], [1.0, 0.0], [1.0, 0.0]],
               [[0.5, 0.5], [0.0, 1.0], [1.0, 0.0]])


def test_ensemble_entropy_is_the_entropy_of_the_mean():
    # means: [.5, .5], [.5, .5], [1, 0] -> log 2, log 2, 0
    np.testing.assert_allclose(ensemble_entropy(STACK), [LOG2, LOG2, 0.0], atol=1e-12)


def test_ensemble_bald_is_bald_on_the_members():
    # sample 0: H(mean) = log 2, members' mean entropy log 2 -> 0 (agree, both unsure)
    # sample 1: H(mean) = log 2, each member certain -> log 2 (confident and disagreeing)
    np.testing.assert_allclose(ensemble_bald(STACK), [0.0, LOG2, 0.0], atol=1e-12)
    rng = np.random.default_rng(0)
    stack = rng.dirichlet(np.ones(4), size=(6, 5)).transpose(0, 2, 1)  # [6, 4, 5]
    np.testing.assert_array_equal(ensemble_bald(stack), bald(stack))


def test_vote_entropy_counts_hard_votes():
    # three members on three classes
    stack = _stack([[0.6, 0.3, 0.1], [0.4, 0.35, 0.25], [0.9, 0.05, 0.05]],
                   [[0.2, 0.7, 0.1], [0.4, 0.35, 0.25], [0.8, 0.1, 0.1]],
                   [[0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.7, 0.2, 0.1]])
    # sample 0: votes 0, 1, 2 -> (1/3, 1/3, 1/3) -> log 3
    # sample 1: all vote 0 (soft disagreement is ignored) -> 0
    # sample 2: all vote 0 -> 0
    np.testing.assert_allclose(vote_entropy(stack), [np.log(3.0), 0.0, 0.0], atol=1e-12)
    # two of three vote class 0, one class 1: -(2/3 log 2/3 + 1/3 log 1/3) = 0.636514...
    two_one = _stack([[0.9, 0.1]], [[0.6, 0.4]], [[0.3, 0.7]])
    np.testing.assert_allclose(vote_entropy(two_one), [0.6365141682948128], rtol=1e-12)


def test_mean_kl_to_consensus_by_hand():
    # members [1, 0] and [.5, .5]: consensus [.75, .25]
    # KL([1, 0] || [.75, .25]) = log(1/.75) = 0.287682...
    # KL([.5, .5] || [.75, .25]) = .5 log(.5/.75) + .5 log(.5/.25) = .5 log(4/3) = 0.143841...
    # mean = 0.215761...
    stack = _stack([[1.0, 0.0]], [[0.5, 0.5]])
    expected = 0.5 * (np.log(4 / 3) + 0.5 * np.log(4 / 3))
    np.testing.assert_allclose(mean_kl_to_consensus(stack), [expected], rtol=1e-12)
    np.testing.assert_allclose(mean_kl_to_consensus(STACK), [0.0, LOG2, 0.0], atol=1e-12)


def test_mean_kl_equals_the_mutual_information():
    # mean_m KL(p_m || mean) = H(mean) - mean_m H(p_m): the same number, two derivations
    rng = np.random.default_rng(1)
    stack = rng.dirichlet(np.ones(3), size=(7, 4)).transpose(0, 2, 1)
    np.testing.assert_allclose(mean_kl_to_consensus(stack), bald(stack), atol=1e-12)


def test_dense_stacks_keep_their_pixel_axes():
    stack = np.repeat(STACK[:, :, None, None, :], 2, axis=2).repeat(3, axis=3)  # [3, 2, 2, 3, 2]
    for fn in (ensemble_entropy, ensemble_bald, vote_entropy, mean_kl_to_consensus):
        assert fn(stack).shape == (3, 2, 3), fn.__name__


def test_a_stack_without_a_member_axis_is_refused():
    for fn in (ensemble_entropy, vote_entropy, mean_kl_to_consensus):
        with pytest.raises(ValueError, match="member"):
            fn(np.full((2, 2), 0.5))
