"""BatchBALD's greedy joint mutual information against brute force on enumerable cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medactive.scoring import bald
from medactive.scoring.batchbald import batchbald

# 5 points, 2 classes, 3 MC passes: P[i, 0, j] = p_j(y_i = 0), P[i, 1, j] = 1 - P[i, 0, j]
P0 = np.array([[0.9, 0.2, 0.5],
               [0.1, 0.8, 0.6],
               [0.7, 0.7, 0.1],
               [0.5, 0.5, 0.5],
               [0.3, 0.95, 0.4]])
SMALL = np.stack([P0, 1.0 - P0], axis=1)  # [5, 2, 3]


def _dirichlet(n, c, t, seed):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(c, 0.5), size=(n, t)).transpose(0, 2, 1)  # [n, c, t]


def _brute_joint_mi(p, chosen):
    """I(y_chosen; w) by enumerating every label configuration, written out plainly."""
    _, c, t = p.shape
    joint_entropy = 0.0
    for labels in itertools.product(range(c), repeat=len(chosen)):
        prob = np.mean([np.prod([p[i, y, j] for i, y in zip(chosen, labels)]) for j in range(t)])
        if prob > 0:
            joint_entropy -= prob * np.log(prob)
    expected = sum(-sum(p[i, y, j] * np.log(p[i, y, j]) for y in range(c) if p[i, y, j] > 0)
                   for i in chosen for j in range(t)) / t
    return joint_entropy - expected


def test_batch_of_one_is_bald():
    p = _dirichlet(12, 3, 5, seed=0)
    positions, mi = batchbald(p, 1, rng=0)
    assert positions.tolist() == [int(np.argmax(bald(p)))]
    np.testing.assert_allclose(mi, [bald(p).max()], rtol=1e-12)


def test_greedy_joint_mi_equals_brute_force():
    positions, mi = batchbald(SMALL, 3, rng=0)
    chosen, values = [], []
    for _ in range(3):
        rest = [i for i in range(5) if i not in chosen]
        gains = [_brute_joint_mi(SMALL, chosen + [i]) for i in rest]
        chosen.append(rest[int(np.argmax(gains))])
        values.append(max(gains))
    assert positions.tolist() == chosen
    np.testing.assert_allclose(mi, values, rtol=1e-10)


def test_greedy_values_equal_brute_force_on_three_classes():
    p = _dirichlet(6, 3, 4, seed=1)
    positions, mi = batchbald(p, 4, rng=0)  # 3^4 = 81 configurations: exact
    for k in range(1, 5):
        np.testing.assert_allclose(mi[k - 1], _brute_joint_mi(p, positions[:k].tolist()),
                                   rtol=1e-10)


def test_sampled_estimator_agrees_with_the_exact_one():
    p = _dirichlet(6, 3, 4, seed=1)
    exact_idx, exact = batchbald(p, 4, rng=0)
    # max_exact_configs=3: sampled from the second pick on (its joint has 9 configurations)
    sampled_idx, sampled = batchbald(p, 4, rng=0, max_exact_configs=3, n_config_samples=200_000)
    assert sampled_idx.tolist() == exact_idx.tolist()
    np.testing.assert_allclose(sampled, exact, atol=0.01)
    assert sampled[0] == exact[0]  # the first pick is exact either way


def test_a_duplicate_adds_nothing_where_top_k_bald_takes_both():
    # point 0 and its copy 1: passes disagree strongly; point 2 less so, but independently
    a = np.array([[0.99, 0.01, 0.99, 0.01], [0.01, 0.99, 0.01, 0.99]])
    b = np.array([[0.9, 0.9, 0.1, 0.1], [0.1, 0.1, 0.9, 0.9]])
    p = np.stack([a, a, b, np.full((2, 4), 0.5)])  # [4, 2, 4]
    assert np.argsort(-bald(p))[:2].tolist() == [0, 1] or \
        np.argsort(-bald(p))[:2].tolist() == [1, 0]  # top-2 BALD: both copies
    positions, mi = batchbald(p, 2, rng=0)
    assert set(positions.tolist()) & {0, 1} and 2 in positions.tolist()
    _, copies = batchbald(p[:2], 2, rng=0)
    assert copies[1] - copies[0] < 0.05 < mi[1] - mi[0]  # a copy adds little (label noise)
    certain = np.stack([np.array([[1.0, 0.0], [0.0, 1.0]])] * 2)  # deterministic passes
    np.testing.assert_allclose(batchbald(certain, 2, rng=0)[1], [np.log(2), np.log(2)])


def test_reproducible_per_seed_in_the_sampled_regime():
    p = _dirichlet(30, 4, 5, seed=2)
    kw = {"max_exact_configs": 16, "n_config_samples": 64}
    a, b = batchbald(p, 6, rng=3, **kw), batchbald(p, 6, rng=3, **kw)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], batchbald(p, 6, rng=4, **kw)[1])  # sampling uses rng


def test_ties_are_broken_by_rng():
    p = np.stack([SMALL[0]] * 6)  # six identical points: every first pick ties
    firsts = {int(batchbald(p, 1, rng=seed)[0][0]) for seed in range(12)}
    assert len(firsts) > 1


def test_candidates_prefiltered_by_bald():
    p = _dirichlet(20, 3, 5, seed=4)
    top = set(np.argsort(-bald(p))[:5].tolist())
    positions, _ = batchbald(p, 3, rng=0, n_candidates=5)
    assert set(positions.tolist()) <= top
    assert batchbald(p, 3, rng=0, n_candidates=1)[0].size == 3  # at least the batch size


def test_bad_input():
    with pytest.raises(ValueError, match=r"\[n, c, t\]"):
        batchbald(np.full((3, 2, 4, 4, 2), 0.5), 1)
    with pytest.raises(ValueError, match="sum to 1"):
        batchbald(np.full((3, 2, 4), 0.7), 1)
    with pytest.raises(ValueError, match="n_config_samples"):
        batchbald(SMALL, 2, n_config_samples=0)
