"""Random sampling: the baseline every active-learning method must beat (survey §6).

References:
    Wang et al., "A comprehensive survey on deep active learning in medical image analysis",
    2024, §6.
"""

from __future__ import annotations

import numpy as np

from medactive.predictions import Predictions
from medactive.selection.topk import random_subset
from medactive.strategies.base import QueryResult, Strategy, register_strategy


@register_strategy
class RandomSampling(Strategy):
    """Uniform draw without replacement from the unlabeled pool; needs no model output."""

    name = "random"
    description = "Uniform random draw from the unlabeled pool (baseline; needs no model output)."
    requires = ()

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        positions = random_subset(unlabeled_idx.size, budget, rng=rng)
        return QueryResult(unlabeled_idx[positions], np.full(budget, np.nan))
