"""DBAL (max entropy with MC dropout): top-b by the entropy of the mean prediction.

``H[mean_t p_t]`` over the ``T`` passes of ``"mc_probas"`` ``[n, c, t]`` made with dropout on
(``T``: the training preset's passes, 25 for ``cpu``, or option ``n_mc_samples``).

References:
    Gal, Islam and Ghahramani, "Deep Bayesian active learning with image data", ICML 2017.
"""

from __future__ import annotations

from medactive.scoring import mc_entropy
from medactive.strategies._scored import MCScoreStrategy
from medactive.strategies.base import register_strategy


@register_strategy
class DBAL(MCScoreStrategy):
    """Top-b by the entropy of the mean of T MC-dropout passes (T: the training preset's, 25 for cpu; option n_mc_samples)."""

    name = "dbal"
    description = "Top-b by the entropy of the mean of T MC-dropout passes (T: the training preset's, 25 for cpu; option n_mc_samples)."
    requires = ("mc_probas",)
    score_fn = mc_entropy
