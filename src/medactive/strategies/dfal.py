"""DFAL, DeepFool active learning: query the samples whose prediction the smallest
perturbation changes (adversarial uncertainty, survey §3.1.5).

The DeepFool perturbation norm ``d`` (Moosavi-Dezfooli et al. 2016) approximates a sample's
distance to the decision boundary; DFAL queries the smallest. The task computes it beside the
model (:mod:`medactive.tasks.adversarial`: on the head over the encoder features in frozen
mode, on the CNN over the images in finetune mode) and hands it over as the prediction field
``"dfal_distance"`` ``[n]``. The strategy's score is ``1 / (1 + d)``: higher = closer = more
informative, as every score here, and in ``(0, 1]`` (0 for a sample nothing can flip,
``d = inf``), so the samplers that need non-negative scores work (``power:dfal``). Top-b by
the score is smallest-distance first.

Classification only (the segmentation predictions refuse the field in one line). Difference
from the paper: DFAL also adds each queried sample's adversarial twin to the training set with
the oracle's label; here the cycle trains on oracle labels only.

References:
    Ducoffe and Precioso, "Adversarial active learning for deep networks: a margin based
    approach", arXiv:1802.09841, 2018. Moosavi-Dezfooli, Fawzi and Frossard, "DeepFool: a
    simple and accurate method to fool deep neural networks", CVPR 2016.
"""

from __future__ import annotations

import numpy as np

from medactive.strategies._scored import TopScoreStrategy
from medactive.strategies.base import register_strategy


def closeness(distance: np.ndarray) -> np.ndarray:
    """``1 / (1 + d)`` ``[n]`` of DeepFool distances ``d >= 0`` ``[n]`` (``inf`` -> 0).

    Raises:
        ValueError: a negative or NaN distance.
    """
    d = np.asarray(distance, dtype=np.float64)
    if np.isnan(d).any() or (d < 0).any():
        raise ValueError("dfal_distance must hold non-negative distances (no NaN)")
    return 1.0 / (1.0 + d)


@register_strategy
class DFAL(TopScoreStrategy):
    """Top-b by ``1 / (1 + d)``: the smallest DeepFool distances ``"dfal_distance"`` first.

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> p = ArrayPredictions(dfal_distance=np.array([0.5, 0.1, 2.0, 0.0]))
        >>> r = DFAL().query(p, np.arange(4), np.array([], int), 2, rng=0)
        >>> r.indices.tolist(), r.scores.round(3).tolist()
        ([3, 1], [1.0, 0.909])
    """

    name = "dfal"
    description = ("DFAL: top-b by closeness 1/(1+d) to the decision boundary, d the norm of "
                   "the DeepFool perturbation that changes the prediction (Ducoffe & Precioso "
                   "2018; classification).")
    requires = ("dfal_distance",)
    field = "dfal_distance"
    score_fn = closeness
