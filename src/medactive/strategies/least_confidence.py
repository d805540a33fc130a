"""Top-b by least confidence, 1 - max class probability (single forward pass).

References:
    Lewis and Catlett, "Heterogeneous uncertainty sampling for supervised learning", 1994.
"""

from __future__ import annotations

from medactive.scoring import least_confidence
from medactive.strategies._scored import TopScoreStrategy
from medactive.strategies.base import register_strategy


@register_strategy
class LeastConfidence(TopScoreStrategy):
    """Top-b by least confidence, 1 - max class probability (single forward pass)."""

    name = "least_confidence"
    description = "Top-b by least confidence, 1 - max class probability (single forward pass)."
    requires = ("probas",)
    score_fn = least_confidence
