"""Query strategies, one file per method; importing this package registers all of them.

Use :func:`create_strategy` with a registered name (``list_strategies()`` lists them).
"""

from __future__ import annotations

from medactive.strategies import (  # noqa: F401  (imported to register)
    badge,
    bald,
    coreset,
    dbal,
    entropy,
    least_confidence,
    margin,
    mean_variance,
    random_balanced,
    random_foreground,
    random_sampling,
    typiclust,
)
from medactive.strategies.base import (
    QueryResult,
    Strategy,
    create_strategy,
    list_strategies,
    register_strategy,
    strategy_descriptions,
)

__all__ = ["QueryResult", "Strategy", "create_strategy", "list_strategies", "register_strategy",
           "strategy_descriptions"]
