"""Random among samples predicted to contain foreground (segmentation baseline).

Most slices of a cardiac MRI stack, and most patches of a slice, are background only; a random
draw spends much of the budget on them. This baseline draws uniformly among the unlabeled
slices (or patches) where the current model predicts some foreground (an argmax other than
class 0 in at least one pixel, :func:`~medactive.scoring.foreground.predicted_foreground`),
and fills the rest of the budget uniformly at random from the other samples when too few do.

On classification outputs ``[n, c]`` class 0 counts as the background: the strategy draws
among samples predicted not class 0 (e.g. the predicted positives of a binary task), then from
the rest.

References:
    Lüth et al., "nnActive: A Framework for Evaluation of Active Learning in 3D Biomedical
    Segmentation", 2025 (its foreground-aware random baselines).
"""

from __future__ import annotations

import numpy as np

from medactive.predictions import Predictions
from medactive.scoring.foreground import predicted_foreground
from medactive.strategies.base import QueryResult, Strategy, register_strategy


@register_strategy
class RandomForeground(Strategy):
    """Uniform random among predicted-foreground samples, then among the rest.

    The query's scores are each pick's reduced foreground indicator (with the ``"mean"``
    reduction: the fraction of its pixels predicted foreground; 0 for fill-up picks).

    Example:
        >>> from medactive.predictions import ArrayPredictions
        >>> p = np.zeros((5, 2, 1, 2)); p[:, 0] = 1.0  # all background ...
        >>> p[1, :, 0, 1] = p[3, :, 0, 1] = [0.3, 0.7]  # ... but one pixel of slices 1 and 3
        >>> r = RandomForeground().query(ArrayPredictions(probas=p), np.arange(5),
        ...                              np.array([], int), 2, rng=0)
        >>> sorted(r.indices.tolist()), r.scores.tolist()
        ([1, 3], [0.5, 0.5])
    """

    name = "random_foreground"
    description = ("Random among slices/patches predicted to contain foreground, then random "
                   "for the rest of the budget (segmentation baseline).")
    requires = ("probas",)

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        scores = predictions.score(predicted_foreground, "probas", unlabeled_idx)
        foreground = np.flatnonzero(scores > 0)
        positions = rng.permutation(foreground)[:budget]
        if positions.size < budget:
            rest = np.flatnonzero(scores <= 0)
            positions = np.concatenate([positions,
                                        rng.permutation(rest)[:budget - positions.size]])
        return QueryResult(unlabeled_idx[positions], scores[positions])
