"""Strategies by name: every built-in strategy module registers itself on import; this module
imports them all, so a name is found whichever strategy module was imported first."""

from __future__ import annotations

from medactive.errors import ConfigError
from medactive.strategies import (  # noqa: F401  (imported to register)
    badge,
    bald,
    coreset,
    dbal,
    entropy,
    facility_location,
    kmeans,
    least_confidence,
    margin,
    max_cover,
    mean_variance,
    probcover,
    random_balanced,
    random_foreground,
    random_sampling,
    typiclust,
)
from medactive.strategies.base import _REGISTRY, Strategy


def list_strategies() -> list[str]:
    """Sorted names of all registered strategies."""
    return sorted(_REGISTRY)


def strategy_descriptions() -> dict[str, str]:
    """``name -> one-line description`` for every registered strategy."""
    return {name: getattr(_REGISTRY[name], "description", "") for name in sorted(_REGISTRY)}


def create_strategy(name: str, **kwargs) -> Strategy:
    """Instantiate the strategy registered as ``name`` with keyword options.

    Raises:
        ConfigError: unknown name (the message lists the valid names).
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown strategy {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as exc:  # an unknown or missing option, e.g. create_strategy("bald", t=3)
        raise ConfigError(f"bad options {kwargs} for strategy {name!r}: {exc}") from None
