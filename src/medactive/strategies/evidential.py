"""Evidential strategies: top-b by the uncertainty of an evidential head's Dirichlet
(uncertainty-aware model, survey §3.1.4).

The task trains the classifier with Sensoy et al.'s evidential loss (``medactive run
--evidential``, :mod:`medactive.tasks.evidential`) and hands its Dirichlet parameters to these
strategies as the prediction field ``"dirichlet_alpha"`` ``[n, c]``. Both are scores, so they
compose with the samplers (``power:evidential``).

- ``evidential``: total uncertainty ``u = K / S`` (Sensoy et al. 2018).
- ``evidential_epistemic``: the mutual information between label and categorical parameters
  under ``Dir(alpha)`` (Malinin & Gales 2018), the part of the uncertainty due to missing
  evidence rather than class overlap.

References:
    Sensoy, Kaplan and Kandemir, "Evidential deep learning to quantify classification
    uncertainty", NeurIPS 2018. Malinin and Gales, "Predictive uncertainty estimation via prior
    networks", NeurIPS 2018.
"""

from __future__ import annotations

from medactive.scoring.evidential import dirichlet_mutual_information, dirichlet_vacuity
from medactive.strategies._scored import TopScoreStrategy
from medactive.strategies.base import register_strategy


@register_strategy
class Evidential(TopScoreStrategy):
    """Top-b by the vacuity ``K / S`` of the evidential head's Dirichlet (needs a model trained
    with ``--evidential``).

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> p = ArrayPredictions(dirichlet_alpha=np.array([[9.0, 1.0], [1.0, 1.0], [3.0, 1.0]]))
        >>> Evidential().query(p, np.arange(3), np.array([], int), 2, rng=0).indices.tolist()
        [1, 2]
    """

    name = "evidential"
    description = ("Evidential deep learning: top-b by the total uncertainty K/S of the "
                   "Dirichlet head (Sensoy et al. 2018; needs --evidential).")
    requires = ("dirichlet_alpha",)
    field = "dirichlet_alpha"
    score_fn = dirichlet_vacuity


@register_strategy
class EvidentialEpistemic(TopScoreStrategy):
    """Top-b by the mutual information between label and class probabilities under the
    evidential head's Dirichlet (needs a model trained with ``--evidential``)."""

    name = "evidential_epistemic"
    description = ("Evidential: top-b by the Dirichlet's mutual information (epistemic part; "
                   "Malinin & Gales 2018; needs --evidential).")
    requires = ("dirichlet_alpha",)
    field = "dirichlet_alpha"
    score_fn = dirichlet_mutual_information
