"""Informativeness as pure array functions of model outputs (survey §3.1, Table 1).

Every function maps class probabilities ``[n, c, ...]`` (single pass) or MC-dropout stacks
``[n, c, ..., t]`` to scores ``[n, ...]``: any spatial dimensions after the class axis
(segmentation pixels) are kept, and higher always means more informative.
:meth:`medactive.predictions.Predictions.score` averages the remaining pixel dimensions.
Representativeness scores (survey §3.2) take embedding geometry instead: :func:`typicality`
maps k-nearest-neighbour distances ``[n, k]`` to ``[n]``.
"""

from __future__ import annotations

from medactive.scoring.bayesian import bald, mc_entropy, mean_variance
from medactive.scoring.representativeness import typicality
from medactive.scoring.uncertainty import class_variance, entropy, least_confidence, margin

__all__ = ["bald", "class_variance", "entropy", "least_confidence", "margin", "mc_entropy",
           "mean_variance", "typicality"]
