"""Mean variance: top-b by the class-averaged variance of MC-dropout probabilities.

Score ``(1/c) sum_i Var_t[p_{i,t}]`` over the ``T`` passes of ``"mc_probas"`` ``[n, c, t]``
(the variance of each class probability across passes, averaged over classes). The survey's
Table 1 prints a single-pass form (the variance across classes of one probability vector); that
one is :func:`medactive.scoring.class_variance`.

References:
    Gal, Islam and Ghahramani, "Deep Bayesian active learning with image data", ICML 2017.
"""

from __future__ import annotations

from medactive.scoring import mean_variance
from medactive.strategies._scored import MCScoreStrategy
from medactive.strategies.base import register_strategy


@register_strategy
class MeanVariance(MCScoreStrategy):
    """Top-b by the class-averaged variance of MC-dropout probabilities over T passes."""

    name = "mean_variance"
    description = "Top-b by the class-averaged variance of MC-dropout probabilities over T passes."
    requires = ("mc_probas",)
    score_fn = mean_variance
