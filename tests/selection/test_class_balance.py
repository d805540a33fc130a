"""Class quotas rarest first (Bengar et al. 2022) and ClaSP (nnActive), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.selection.class_balance import balance_quotas, clasp, class_balanced

#: 10 candidates: 6 predicted class 0, 3 class 1, 1 class 2
CLASSES = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])
MEMBER = np.eye(3, dtype=bool)[CLASSES]
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_balance_quotas_by_hand():
    # even split 2, 2, 2; class 2 has 1 member, its share goes to the rarer of the others
    assert balance_quotas(np.zeros(3), np.array([6, 3, 1]), 6).tolist() == [2, 3, 1]
    assert balance_quotas(np.zeros(3), np.array([6, 3, 1]), 3).tolist() == [1, 1, 1]
    # the labeled set already holds 4 of class 0: the picks go to classes 1 and 2 first
    assert balance_quotas(np.array([4, 0, 0]), np.array([6, 3, 1]), 4).tolist() == [0, 3, 1]
    assert balance_quotas(np.array([4, 0, 0]), np.array([6, 3, 1]), 6).tolist() == [2, 3, 1]


def test_class_balanced_meets_its_quotas():
    picks = class_balanced(SCORES, MEMBER, 6)
    assert np.bincount(CLASSES[picks], minlength=3).tolist() == [2, 3, 1]
    # rarest class first, the highest scores inside each class
    assert picks.tolist() == [9, 6, 7, 8, 0, 1]
    picks = class_balanced(SCORES, MEMBER, 4, labeled_counts=np.array([4, 0, 0]))
    assert np.bincount(CLASSES[picks], minlength=3).tolist() == [0, 3, 1]


def test_top_k_would_miss_the_rare_classes():
    assert set(CLASSES[np.argsort(-SCORES)[:3]].tolist()) == {0}
    assert set(CLASSES[class_balanced(SCORES, MEMBER, 3)].tolist()) == {0, 1, 2}


def test_shared_members_are_filled_up():
    # segmentation-like: slice 0 contains classes 0 and 1, the others only class 0
    member = np.array([[1, 1], [1, 0], [1, 0], [1, 0]], dtype=bool)
    picks = class_balanced(np.array([0.1, 0.9, 0.8, 0.7]), member, 3)
    # class 1 (rarest) takes slice 0; class 0's quota of 1 its best free member; fill-up: 2
    assert picks.tolist() == [0, 1, 2]


def test_clasp_without_noise_is_class_share_then_top_k():
    # τ = 0: half the budget (2) by class quotas, the rest by the highest scores
    picks = clasp(SCORES, MEMBER, 4, noise=0.0, class_share=0.5, rng=0)
    assert picks.tolist() == [9, 6, 0, 1]
    assert clasp(SCORES, MEMBER, 3, noise=0.0, class_share=1.0, rng=0).tolist() == [9, 6, 0]
    assert clasp(SCORES, MEMBER, 3, noise=0.0, class_share=0.0, rng=0).tolist() == [0, 1, 2]


def test_clasp_noise_decays_with_the_round():
    # the noise scale τ_0 · decay^r: at a late round the draw is the noiseless one
    scores = np.random.default_rng(0).random(30)
    member = np.eye(2, dtype=bool)[np.arange(30) % 2]
    exact = clasp(scores, member, 5, noise=0.0, rng=0)
    early = {tuple(clasp(scores, member, 5, round_index=0, rng=s).tolist()) for s in range(20)}
    late = {tuple(clasp(scores, member, 5, round_index=60, rng=s).tolist()) for s in range(20)}
    assert len(early) > 1 and late == {tuple(exact.tolist())}


def test_reproducible_and_errors():
    a = clasp(SCORES, MEMBER, 5, rng=3)
    assert a.tolist() == clasp(SCORES, MEMBER, 5, rng=3).tolist() and len(set(a.tolist())) == 5
    with pytest.raises(ConfigError, match="class_share"):
        clasp(SCORES, MEMBER, 2, class_share=2.0, rng=0)
    with pytest.raises(ValueError, match="membership"):
        class_balanced(SCORES, MEMBER[:5], 2)
    with pytest.raises(ValueError, match="at least one class"):
        class_balanced(SCORES, np.zeros((10, 3), bool), 2)
