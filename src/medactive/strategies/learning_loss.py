"""Learning loss: top-b by the loss a loss-prediction module predicts (performance estimation,
survey §3.1.3).

The module reads intermediate features of the round's model and is trained with it by the task
(``--learning-loss``, :mod:`medactive.tasks.learning_loss`); it reaches this strategy as the
prediction field ``"predicted_loss"`` ``[n]``, the module's raw output. That output is a
ranking score of any sign (the paper's ranking loss sees only differences), so the strategy's
score is its softplus ``log(1 + exp(l̂))``: strictly increasing, hence the same top-b as the raw
values, and positive, so it composes with the samplers that need scores >= 0
(``power:learning_loss``, ``class_balanced:learning_loss``, ...).

References:
    Yoo and Kweon, "Learning loss for active learning", CVPR 2019.
"""

from __future__ import annotations

import numpy as np

from medactive.strategies._scored import TopScoreStrategy
from medactive.strategies.base import register_strategy


def predicted_loss_score(values: np.ndarray) -> np.ndarray:
    """``softplus(l̂)`` ``[n]`` of predicted losses ``l̂`` ``[n]`` (float64, ``> 0`` but for
    values below about -745, whose softplus underflows to 0).

    Example:
        >>> predicted_loss_score(np.array([0.0, -2.0, 3.0])).round(4).tolist()
        [0.6931, 0.1269, 3.0486]
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"predicted losses must be [n], got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("predicted losses must be finite")
    return np.logaddexp(0.0, values)


@register_strategy
class LearningLoss(TopScoreStrategy):
    """Top-b by ``"predicted_loss"``: the unlabeled samples whose loss the module predicts
    highest.

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> p = ArrayPredictions(predicted_loss=np.array([-1.0, 2.5, 0.3, 1.0]))
        >>> LearningLoss().query(p, np.arange(4), np.array([], int), 2, rng=0).indices.tolist()
        [1, 3]
    """

    name = "learning_loss"
    description = ("Learning loss: top-b by the loss a module on intermediate features predicts "
                   "(Yoo & Kweon 2019; train with --learning-loss).")
    requires = ("predicted_loss",)
    field = "predicted_loss"
    score_fn = predicted_loss_score
