"""Input validation shared by public functions; private twins assume valid input."""

from __future__ import annotations

import inspect
import os
import tempfile
from pathlib import Path

import array_api_compat
import numpy as np

from medactive.errors import ConfigError


def check_probas(probas: np.ndarray, *, axis: int = 1, name: str = "probas") -> np.ndarray:
    """Check that ``probas`` holds finite probabilities summing to 1 along ``axis``.

    A torch tensor (any array-API array but numpy) is checked where it lives and returned in
    float64 on its device (``--selection-device``).

    Raises:
        ValueError: NaN/inf values, negative values or rows that do not sum to 1.
    """
    if not isinstance(probas, np.ndarray) and array_api_compat.is_array_api_obj(probas):
        return _check_probas_xp(probas, axis=axis, name=name)
    probas = np.asarray(probas, dtype=np.float64)
    if probas.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions [n, c, ...], got {probas.shape}")
    # two passes over the data (the sums and the minimum), no full-size temporaries: a NaN or
    # an infinity makes its row's sum non-finite, so the sums find them
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, or an overflow, in a sum
        sums = probas.sum(axis=axis)
    if not np.all(np.isfinite(sums)):
        n_bad = int(np.sum(~np.isfinite(probas)))
        if n_bad:
            raise ValueError(f"{name} contains {n_bad} NaN or infinite values (model diverged?)")
    if probas.size and probas.min() < -1e-6:
        raise ValueError(f"{name} contains negative values; expected probabilities")
    if not np.allclose(sums, 1.0, atol=1e-3):
        raise ValueError(f"{name} must sum to 1 along axis {axis} (max deviation "
                         f"{float(np.max(np.abs(sums - 1))):.3g}); pass softmax outputs")
    return probas


def _check_probas_xp(probas, *, axis: int, name: str):
    """:func:`check_probas` on an array-API backend (the same checks, on the device)."""
    xp = array_api_compat.array_namespace(probas)
    probas = xp.astype(probas, xp.float64)
    if probas.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions [n, c, ...], got "
                         f"{tuple(probas.shape)}")
    sums = xp.sum(probas, axis=axis)
    if not bool(xp.all(xp.isfinite(sums))):
        n_bad = int(xp.sum(xp.astype(~xp.isfinite(probas), xp.int64)))
        if n_bad:
            raise ValueError(f"{name} contains {n_bad} NaN or infinite values (model diverged?)")
    if probas.shape[0] and float(xp.min(probas)) < -1e-6:
        raise ValueError(f"{name} contains negative values; expected probabilities")
    deviation = float(xp.max(xp.abs(sums - 1.0))) if sums.shape[0] else 0.0
    if not deviation <= 1e-3 + 1e-5:  # np.allclose(sums, 1, atol=1e-3)
        raise ValueError(f"{name} must sum to 1 along axis {axis} (max deviation "
                         f"{deviation:.3g}); pass softmax outputs")
    return probas


def check_budget(budget: int, n_available: int, *, name: str = "budget") -> int:
    """Check ``1 <= budget <= n_available`` and return it as an int."""
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {budget!r}")
    budget = int(budget)
    if budget < 1:
        raise ConfigError(f"{name} must be at least 1, got {budget}")
    if budget > n_available:
        raise ConfigError(f"{name}={budget} is larger than the {n_available} unlabeled samples "
                          "left in the pool")
    return budget


def check_indices(idx: np.ndarray, n_pool: int | None = None, *, name: str = "indices") -> np.ndarray:
    """Return ``idx`` as a 1-D int64 array of unique, in-range indices."""
    idx = np.asarray(idx)
    if idx.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {idx.shape}")
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    if np.unique(idx).size != idx.size:
        raise ValueError(f"{name} contains duplicates")
    if n_pool is not None and idx.size and (idx.min() < 0 or idx.max() >= n_pool):
        raise ValueError(f"{name} out of range for a pool of {n_pool} samples")
    return idx


def config_from_options(cls, options, *, source: str, what: str):
    """The frozen dataclass ``cls`` with its defaults overridden by ``options``.

    Raises:
        ConfigError: an unknown field or a bad value, naming ``source`` and ``what``
            (e.g. ``"semi_options: unknown fixmatch option(s) tau; known: ..."``).
    """
    from dataclasses import fields

    options = dict(options or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown {what} option(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    try:
        return cls(**options)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except TypeError as exc:  # e.g. a string where a number belongs
        raise ConfigError(f"{source}: bad {what} options {options}: {exc}") from None


def semi_method_config(method, options, *, methods, task: str, build):
    """``build(options)`` for a known semi-supervised ``method``; ``None`` without a method.

    Raises:
        ConfigError: an unknown method (naming ``task``'s choices), or options without one.
    """
    if method is None:
        if options:
            raise ConfigError(f"semi_options {options} given without a semi-supervised method "
                              f"(choose: {', '.join(methods)})")
        return None
    if method not in methods:
        raise ConfigError(f"unknown semi-supervised method {method!r} for {task}; "
                          f"choose: {', '.join(methods)}")
    return build(options)


def check_at_least(value: int | None, minimum: int, *, name: str, note: str = "") -> None:
    """Refuse an integer option below ``minimum``: ``"--rounds must be at least 0 (NOTE), got -1"``.

    One wording for every count and seed of the command line (``None``: not given, accepted).
    """
    if value is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}{f' ({note})' if note else ''}, "
                          f"got {value}")


def check_output_dir(path: str | Path, *, name: str = "--out") -> Path:
    """Check, before any work, that ``path`` is (or can be created as) a folder we can write.

    Nothing is created: the nearest existing ancestor must be a folder in which a probe file
    can be written (and removed).

    Raises:
        ConfigError: ``path`` is a file, lies below a file, or cannot be written (naming it).
    """
    path = Path(path)
    parent = path
    try:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{name} {path}: exists and is not a folder")
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise ConfigError(f"{name} {path}: {parent} is a file, not a folder")
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".medactive-write-check-")
    except OSError as exc:
        raise ConfigError(f"{name} {path}: cannot write in {parent} "
                          f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def check_pool_embeddings(X, X_labeled, budget: int):
    """``(X [n, d] float32, X_labeled [m, d] float32, budget)`` checked: 2-D, same width, a
    budget the pool allows (``X_labeled`` ``None``: no labeled rows).

    Raises:
        ValueError: wrong shapes. ConfigError: the budget is out of range.
    """
    import numpy as np

    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be [n, d], got shape {X.shape}")
    budget = check_budget(budget, X.shape[0])
    if X_labeled is None:
        X_labeled = np.zeros((0, X.shape[1]), dtype=np.float32)
    X_labeled = np.asarray(X_labeled, dtype=np.float32)
    if X_labeled.ndim != 2 or X_labeled.shape[1] != X.shape[1]:
        raise ValueError(f"X_labeled must be [m, {X.shape[1]}], got shape {X_labeled.shape}")
    return X, X_labeled, budget


def accepts_keyword(fn, key: str) -> bool:
    """Whether callable ``fn`` takes keyword argument ``key`` (by name or through ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    return key in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
