"""Strategies by name: every built-in strategy module registers itself on import; this module
imports them all, so a name is found whichever strategy module was imported first."""

from __future__ import annotations

from medactive.errors import ConfigError
from medactive.strategies import (  # noqa: F401  (imported to register)
    badge,
    bald,
    batchbald,
    coreset,
    dal,
    dbal,
    dfal,
    egl,
    ensemble,
    entropy,
    evidential,
    facility_location,
    kmeans,
    learning_loss,
    least_confidence,
    margin,
    max_cover,
    mean_variance,
    probcover,
    qbc,
    random_balanced,
    random_foreground,
    random_sampling,
    tta,
    typiclust,
    vaal,
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
    if name not in _REGISTRY and ":" in name:  # SAMPLER:SCORE, hybrid:A+B, fusion:A+B
        from medactive.strategies.composed import create_composed

        return create_composed(name, create=create_strategy, **kwargs)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown strategy {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}"
                          " (or SAMPLER:SCORE, see `medactive strategies`)")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as exc:  # an unknown or missing option, e.g. create_strategy("bald", t=3)
        raise ConfigError(f"bad options {kwargs} for strategy {name!r}: {exc}") from None


def list_samplers() -> list[str]:
    """Sorted sampler names, the ``SAMPLER`` of a composed name ``SAMPLER:SCORE``."""
    from medactive.strategies.composed import list_samplers as samplers

    return samplers()


def list_scores() -> list[str]:
    """Sorted names of the single-score strategies, the ``SCORE`` of ``SAMPLER:SCORE``."""
    from medactive.strategies.composed import list_scores as scores

    return scores()


def strategy_listing() -> str:
    """The text ``medactive strategies`` prints: strategies, then samplers and scores apart,
    then the composed-name syntax."""
    from medactive.strategies.composed import SAMPLERS

    descriptions = strategy_descriptions()
    scores = list_scores()
    width = max(map(len, [*descriptions, *SAMPLERS]))
    lines = ["Strategies:"]
    lines += [f"  {n:<{width}}  {t}" for n, t in descriptions.items() if n not in scores]
    lines += ["", "Scores (use alone, or as SCORE in SAMPLER:SCORE):"]
    lines += [f"  {n:<{width}}  {descriptions[n]}" for n in scores]
    lines += ["", "Samplers (SAMPLER:SCORE, e.g. power:bald; topk:entropy = entropy):"]
    lines += [f"  {n:<{width}}  {SAMPLERS[n].description}" for n in sorted(SAMPLERS)]
    lines += ["", ("Hybrids: hybrid:A+B (top m·k by strategy A, then k of them by strategy B; "
                   "option m=10), fusion:A+B[+...] (weighted sum of rank-normalised scores; "
                   "option weights).")]
    return "\n".join(lines)
