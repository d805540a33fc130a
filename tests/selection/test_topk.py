from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.selection.topk import random_subset, top_k


def test_top_k_by_hand_stable_ties():
    assert top_k(np.array([0.1, 0.9, 0.5, 0.9]), 3).tolist() == [1, 3, 2]


def test_top_k_random_ties_reproducible():
    scores = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    seen = {tuple(top_k(scores, 2, rng=s).tolist()) for s in range(20)}
    assert len(seen) > 1  # ties really are broken at random
    assert all(4 not in t for t in seen)
    assert top_k(scores, 2, rng=3).tolist() == top_k(scores, 2, rng=3).tolist()


def test_top_k_errors():
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.array([0.1, np.nan]), 1)
    with pytest.raises(ConfigError, match="larger"):
        top_k(np.array([0.1]), 2)


def test_random_subset():
    a = random_subset(10, 4, rng=0)
    assert len(set(a.tolist())) == 4 and a.tolist() == random_subset(10, 4, rng=0).tolist()
