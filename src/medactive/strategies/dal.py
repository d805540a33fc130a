"""DAL, discriminative active learning: top-b by the probability a labeled-vs-unlabeled
discriminator gives to "unlabeled" (discrepancy-based representativeness, survey §3.2.3).

The discriminator is an MLP on the round model's representation, trained by the task beside the
model (:func:`medactive.tasks.discrepancy.dal_scores`); it reaches this strategy as the
prediction field ``"dal_unlabeled"`` ``[n]``. A score, so it composes with the samplers
(``power:dal``). Difference from the paper: one discriminator per query instead of ten
retrained sub-batches (see :mod:`medactive.tasks.discrepancy`).

References:
    Gissin and Shalev-Shwartz, "Discriminative active learning", arXiv:1907.06347, 2019.
"""

from __future__ import annotations

import numpy as np

from medactive.strategies._scored import TopScoreStrategy
from medactive.strategies.base import register_strategy


def discriminator_score(values: np.ndarray) -> np.ndarray:
    """The field is the score: P(unlabeled) ``[n]``."""
    return np.asarray(values, dtype=np.float64)


@register_strategy
class DAL(TopScoreStrategy):
    """Top-b by ``"dal_unlabeled"``: what a labeled-vs-unlabeled discriminator on the model's
    embeddings finds least like the labeled set.

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> p = ArrayPredictions(dal_unlabeled=np.array([0.2, 0.9, 0.5, 0.7]))
        >>> DAL().query(p, np.arange(4), np.array([], int), 2, rng=0).indices.tolist()
        [1, 3]
    """

    name = "dal"
    description = ("DAL: top-b by P(unlabeled) of a labeled-vs-unlabeled discriminator on the "
                   "model's embeddings (Gissin & Shalev-Shwartz 2019).")
    requires = ("dal_unlabeled",)
    field = "dal_unlabeled"
    score_fn = discriminator_score
