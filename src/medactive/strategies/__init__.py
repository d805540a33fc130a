"""Query strategies, one file per method (registered by :mod:`.registry`).

Use :func:`create_strategy` with a registered name (``list_strategies()`` lists them).
"""

from __future__ import annotations

from medactive.strategies.base import QueryResult, Strategy, register_strategy
from medactive.strategies.registry import create_strategy, list_strategies, strategy_descriptions

__all__ = ["QueryResult", "Strategy", "create_strategy", "list_strategies", "register_strategy",
           "strategy_descriptions"]
