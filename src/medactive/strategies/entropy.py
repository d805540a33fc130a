"""Top-b by the entropy of the predicted class probabilities (single forward pass).

References:
    Joshi et al., "Multi-class active learning for image classification", CVPR 2009.
"""

from __future__ import annotations

from medactive.scoring import entropy
from medactive.strategies._scored import TopScoreStrategy
from medactive.strategies.base import register_strategy


@register_strategy
class Entropy(TopScoreStrategy):
    """Top-b by the entropy of the predicted class probabilities (single forward pass)."""

    name = "entropy"
    description = "Top-b by the entropy of the predicted class probabilities (single forward pass)."
    requires = ("probas",)
    score_fn = entropy
