"""Class-balanced random sampling: random within the model's predicted classes, evenly split.

A stronger baseline than plain random on imbalanced pools (Lüth et al. 2023 argue that AL must
be compared against such baselines): each unlabeled sample gets the class the current model
predicts for it; the budget is split as evenly as possible over the predicted classes present
in the unlabeled pool (a class with too few samples gives its share to the others, remainders
go to classes drawn at random, :func:`~medactive.selection.stratified.balanced_quotas`), and
samples are drawn uniformly at random inside each class.

For dense outputs (segmentation ``[n, c, H, W]``, patches ``[n, c, P, P]``) a sample's class
is the argmax of its class probabilities averaged over the pixels, which is the background
for almost every slice: the strategy then behaves like random. Use ``random_foreground`` there.

References:
    Lüth et al., "Navigating the Pitfalls of Active Learning Evaluation: A Systematic Framework
    for Meaningful Performance Assessment" (realistic-al), NeurIPS 2023.
"""

from __future__ import annotations

import numpy as np

from medactive._validation import check_probas
from medactive.predictions import Predictions
from medactive.selection.stratified import stratified_random
from medactive.strategies.base import QueryResult, Strategy, register_strategy

#: rows of probabilities fetched at once (bounds memory for dense segmentation outputs)
_BLOCK = 256


def predicted_classes(predictions: Predictions, idx: np.ndarray) -> np.ndarray:
    """``[n]`` argmax class of each sample's probabilities averaged over any pixel axes.

    Args:
        predictions: holds ``"probas"`` ``[n, c, ...]``.
        idx: ``[n]`` pool-absolute indices.
    """
    out = np.empty(idx.size, dtype=np.int64)
    for start in range(0, idx.size, _BLOCK):
        probas = check_probas(predictions.get("probas", idx[start:start + _BLOCK]))
        mean = probas.reshape(probas.shape[0], probas.shape[1], -1).mean(axis=2)
        out[start:start + probas.shape[0]] = mean.argmax(axis=1)
    return out


@register_strategy
class RandomBalanced(Strategy):
    """Uniform random inside each predicted class, the budget split evenly over the classes.

    The query's scores are NaN (random has no per-sample informativeness).

    Example:
        >>> from medactive.predictions import ArrayPredictions
        >>> p = np.array([[0.9, 0.1]] * 8 + [[0.2, 0.8]] * 2)  # 8 predicted 0, 2 predicted 1
        >>> r = RandomBalanced().query(ArrayPredictions(probas=p), np.arange(10),
        ...                            np.array([], int), 4, rng=0)
        >>> int((r.indices >= 8).sum())  # 2 of each class
        2
    """

    name = "random_balanced"
    description = ("Class-balanced random: the budget split evenly over the model's predicted "
                   "classes, uniform inside each (baseline).")
    requires = ("probas",)

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        classes = predicted_classes(predictions, unlabeled_idx)
        positions = stratified_random(classes, budget, rng=rng)
        return QueryResult(unlabeled_idx[positions], np.full(budget, np.nan))
