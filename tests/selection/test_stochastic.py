"""Power, softmax and rank sampling (Kirsch et al. 2023) and stochastic batches (Gaillochet
et al. 2023) on hand-checkable distributions.

Distribution tests draw many batches from one seeded generator and compare the counts with the
expected probabilities by a chi-square test at level 0.001: the draws are fixed by the seed, so
the test is deterministic; a wrong sampler (e.g. top-k where uniform is expected) gives a
p-value far below 1e-10.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from medactive.errors import ConfigError
from medactive.selection.stochastic import (
    gumbel_top_k,
    power_sampling,
    random_batches,
    rank_sampling,
    softmax_sampling,
    stochastic_batches,
)
from medactive.selection.topk import top_k

SCORES = np.array([0.1, 0.4, 0.2, 0.8, 0.5])
DRAWS = 4000
SAMPLERS = [power_sampling, softmax_sampling, rank_sampling]


def _first_pick_counts(sampler, scores, beta, draws=DRAWS):
    rng = np.random.default_rng(0)
    counts = np.zeros(scores.size)
    for _ in range(draws):
        counts[sampler(scores, 1, beta=beta, rng=rng)[0]] += 1
    return counts


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_large_beta_is_top_k(sampler):
    for k in (1, 3, 5):
        for seed in range(5):
            picks = sampler(SCORES, k, beta=1e6, rng=seed)
            assert picks.tolist() == top_k(SCORES, k).tolist()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_beta_zero_is_uniform(sampler):
    counts = _first_pick_counts(sampler, SCORES, 0.0)
    assert chisquare(counts).pvalue > 1e-3
    # the uniform draw of 2 without replacement: each item in the batch w.p. 2/5
    rng = np.random.default_rng(1)
    members = np.zeros(SCORES.size)
    for _ in range(DRAWS):
        members[sampler(SCORES, 2, beta=0.0, rng=rng)] += 1
    assert chisquare(members, np.full(5, 2 * DRAWS / 5)).pvalue > 1e-3


@pytest.mark.parametrize(("sampler", "weights"), [
    (power_sampling, SCORES),  # s^1
    (softmax_sampling, np.exp(SCORES)),  # exp(β s) with β = 1
    (rank_sampling, 1.0 / np.array([5, 3, 4, 1, 2])),  # 1 / rank, 1 = highest
])
def test_beta_one_draws_proportionally(sampler, weights):
    counts = _first_pick_counts(sampler, SCORES, 1.0)
    expected = DRAWS * weights / weights.sum()
    assert chisquare(counts, expected).pvalue > 1e-3
    assert chisquare(counts).pvalue < 1e-10  # and it is not uniform


def test_gumbel_top_k_is_sampling_without_replacement():
    # weights 1, 2, 1: P({0,1}) = P({1,2}) = 1/4·2/3 + 1/2·1/2 = 5/12, P({0,2}) = 1/6
    rng = np.random.default_rng(2)
    pairs = {(0, 1): 0, (1, 2): 0, (0, 2): 0}
    for _ in range(DRAWS):
        pairs[tuple(sorted(gumbel_top_k(np.log([1.0, 2.0, 1.0]), 2, rng=rng).tolist()))] += 1
    expected = DRAWS * np.array([5 / 12, 5 / 12, 1 / 6])
    assert chisquare(list(pairs.values()), expected).pvalue > 1e-3


def test_zero_scores_come_last_in_power_sampling():
    scores = np.array([0.0, 0.3, 0.0, 0.6])
    for seed in range(20):
        assert sorted(power_sampling(scores, 2, rng=seed).tolist()) == [1, 3]
        assert sorted(power_sampling(scores, 4, rng=seed)[:2].tolist()) == [1, 3]


@pytest.mark.parametrize("sampler", SAMPLERS + [stochastic_batches])
def test_reproducible_per_seed_and_unique(sampler):
    scores = np.random.default_rng(3).random(50)
    a, b = sampler(scores, 7, rng=11), sampler(scores, 7, rng=11)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 7
    assert any(sampler(scores, 7, rng=s).tolist() != a.tolist() for s in range(12, 20))


def test_errors():
    with pytest.raises(ConfigError, match="beta"):
        power_sampling(SCORES, 2, beta=-1, rng=0)
    with pytest.raises(ValueError, match=">= 0"):
        power_sampling(np.array([0.5, -0.1]), 1, rng=0)
    with pytest.raises(ValueError, match="NaN"):
        softmax_sampling(np.array([0.5, np.nan]), 1, rng=0)
    with pytest.raises(ConfigError, match="larger"):
        rank_sampling(SCORES, 6, rng=0)


def test_random_batches_partition():
    batches = random_batches(10, 3, rng=0)
    assert batches.shape == (3, 3) and len(set(batches.ravel().tolist())) == 9
    assert random_batches(10, 3, n_batches=2, rng=0).shape == (2, 3)
    assert random_batches(10, 3, n_batches=99, rng=0).shape == (3, 3)


def test_stochastic_batches_keeps_the_batch_of_highest_mean():
    scores = np.random.default_rng(4).random(20)
    for seed in range(10):
        batches = random_batches(20, 4, rng=seed)
        best = batches[np.argmax(scores[batches].mean(axis=1))]
        picked = stochastic_batches(scores, 4, rng=seed)
        assert sorted(picked.tolist()) == sorted(best.tolist())
        assert scores[picked].tolist() == sorted(scores[picked].tolist(), reverse=True)
    # by hand: n = k gives the whole pool; one batch holding both high scores wins
    assert sorted(stochastic_batches(scores, 20, rng=0).tolist()) == list(range(20))
