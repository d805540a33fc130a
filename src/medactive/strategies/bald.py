"""BALD: top-b by the mutual information between prediction and model weights.

``H[mean_t p_t] - mean_t H[p_t]`` over the ``T`` MC-dropout passes of ``"mc_probas"``
``[n, c, t]``: high where the passes are each confident but disagree (epistemic uncertainty).

References:
    Houlsby et al., 2011; Gal, Islam and Ghahramani, "Deep Bayesian active learning with image data", ICML 2017.
"""

from __future__ import annotations

from medactive.scoring import bald
from medactive.strategies._scored import MCScoreStrategy
from medactive.strategies.base import register_strategy


@register_strategy
class BALD(MCScoreStrategy):
    """Top-b by BALD over ``T`` MC-dropout passes (``n_mc_samples``; default: the training preset's, 25 for ``cpu``)."""

    name = "bald"
    description = ("Top-b by BALD, the mutual information between prediction and weights over "
                   "T MC-dropout passes.")
    requires = ("mc_probas",)
    score_fn = bald
