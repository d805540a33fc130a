"""Top-b by smallest margin between the two most likely classes (single forward pass).

References:
    Roth and Small, "Margin-based active learning for structured output spaces", ECML 2006.
"""

from __future__ import annotations

from medactive.scoring import margin
from medactive.strategies._scored import TopScoreStrategy
from medactive.strategies.base import register_strategy


@register_strategy
class Margin(TopScoreStrategy):
    """Top-b by smallest margin between the two most likely classes (single forward pass)."""

    name = "margin"
    description = "Top-b by smallest margin between the two most likely classes (single forward pass)."
    requires = ("probas",)
    score_fn = margin
