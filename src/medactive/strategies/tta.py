"""TTA-KL: top-b by the disagreement of the model's predictions on augmented copies of a sample.

Data disagreement (survey §3.1.1): the task predicts each pool sample under ``T`` random
label-preserving augmentations (:mod:`medactive.tasks.tta`; segmentation maps are mapped back
to the original frame) and hands the stack to this strategy as ``"tta_probas"``
``[n, c, (H, W,) T]``. The score is the mean KL divergence of each augmented prediction to
their mean, :func:`medactive.scoring.augmentation.tta_kl` (BALD's mutual-information form on the
augmentation stack). Segmentation pixel scores are reduced per slice by ``--reduction``.

References:
    Wu et al., "COVID-AL: The diagnosis of COVID-19 with deep active learning", Medical Image
    Analysis 68, 101913, 2021; survey §3.1.1 (data disagreement).
"""

from __future__ import annotations

from typing import ClassVar

from medactive.scoring.augmentation import tta_kl
from medactive.strategies._scored import StackScoreStrategy, check_count
from medactive.strategies.base import register_strategy


@register_strategy
class TTAKL(StackScoreStrategy):
    """Top-b by the mean KL of ``T`` test-time-augmented predictions to their mean.

    Args:
        n_augmentations: augmentations ``T`` per sample. ``None`` (default): the
            predictions' (:attr:`Predictions.n_augmentations`, 8). A number is routed to the
            task like ``n_mc_samples``: the active-learning cycle sets the predictions'
            ``n_augmentations`` before the query, so the stack holds exactly ``T`` views. On
            predictions of your own the strategy scores the stack it is given and logs when
            its size differs.

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> agree, contradict = [[0.9, 0.9], [0.1, 0.1]], [[1.0, 0.0], [0.0, 1.0]]
        >>> p = ArrayPredictions(tta_probas=np.array([agree, contradict, agree]))
        >>> TTAKL().query(p, np.arange(3), np.array([], int), 1, rng=0).indices.tolist()
        [1]
    """

    name = "tta_kl"
    description = ("Top-b by the mean KL divergence between the predictions on T random "
                   "test-time augmentations and their mean (T: option n_augmentations, "
                   "default 8).")
    requires = ("tta_probas",)
    field: ClassVar[str] = "tta_probas"
    count_option: ClassVar[str] = "n_augmentations"
    count_noun: ClassVar[str] = "augmentations"
    score_fn = tta_kl

    def __init__(self, n_augmentations: int | None = None) -> None:
        self.n_augmentations = check_count(n_augmentations, "n_augmentations")
