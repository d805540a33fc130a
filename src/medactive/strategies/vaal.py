"""VAAL, variational adversarial active learning: top-b by the probability VAAL's discriminator
gives to "unlabeled" on a VAE's latent space (discrepancy-based, survey §3.2.3).

The VAE and the discriminator train adversarially on the pool's images, by the task beside the
model (:func:`medactive.tasks.discrepancy.vaal_scores`, classification); they reach this
strategy as the prediction field ``"vaal_unlabeled"`` ``[n]``. Task-agnostic like the paper: the
round's classifier is not used.

References:
    Sinha, Ebrahimi and Darrell, "Variational adversarial active learning", ICCV 2019.
"""

from __future__ import annotations

from medactive.strategies._scored import TopScoreStrategy
from medactive.strategies.base import register_strategy
from medactive.strategies.dal import discriminator_score


@register_strategy
class VAAL(TopScoreStrategy):
    """Top-b by ``"vaal_unlabeled"``, 1 − D(μ(x)) of VAAL's discriminator on the VAE latent.

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> p = ArrayPredictions(vaal_unlabeled=np.array([0.1, 0.3, 0.8]))
        >>> VAAL().query(p, np.arange(3), np.array([], int), 1, rng=0).indices.tolist()
        [2]
    """

    name = "vaal"
    description = ("VAAL: top-b by P(unlabeled) of a discriminator on a VAE's latent space, "
                   "trained adversarially on the pool's images (Sinha et al. 2019; classification).")
    requires = ("vaal_unlabeled",)
    field = "vaal_unlabeled"
    score_fn = discriminator_score
