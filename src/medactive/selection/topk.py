"""Top-k and uniform sampling on per-sample scores.

Example:
    >>> import numpy as np
    >>> top_k(np.array([0.1, 0.9, 0.5, 0.9]), 2, rng=None).tolist()
    [1, 3]
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget


def top_k(scores: np.ndarray, k: int, *, rng: RandomLike | None = None) -> np.ndarray:
    """Positions of the ``k`` highest scores, highest first.

    Args:
        scores: ``[n]`` finite scores (higher = more informative).
        k: how many, ``1 <= k <= n``.
        rng: ``None`` breaks ties by position (lower first, a stable sort); a seed or
            Generator breaks them uniformly at random (reproducibly for a seed).

    Returns:
        ``[k]`` positions into ``scores``.

    Raises:
        ValueError: NaN or infinite scores, or ``scores`` not 1-D.
        ConfigError: ``k`` larger than ``n`` or smaller than 1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {scores.shape}")
    k = check_budget(k, scores.size)
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"scores contain {int(np.sum(~np.isfinite(scores)))} NaN or infinite "
                         "values")
    if rng is None:
        return np.argsort(-scores, kind="stable")[:k]
    perm = check_random_state(rng).permutation(scores.size)
    return perm[np.argsort(-scores[perm], kind="stable")[:k]]


def random_subset(n: int, k: int, *, rng: RandomLike) -> np.ndarray:
    """``k`` distinct positions in ``range(n)`` drawn uniformly without replacement."""
    k = check_budget(k, n)
    return check_random_state(rng).choice(n, size=k, replace=False).astype(np.int64)


def top_candidates(scores: np.ndarray, X: np.ndarray, k: int, *, candidates_per_pick: int,
                   max_candidates: int, rng, name: str) -> np.ndarray:
    """Positions of the ``min(n, max(k, min(candidates_per_pick * k, max_candidates)))``
    highest ``scores`` (ties at random by ``rng``): the candidates a diversity sampler chooses
    ``k`` among. ``X`` must have a row per score (an array, or anything with ``shape`` and
    row indexing such as :class:`medactive.predictions.FieldRows`, which is not read here);
    ``name`` prefixes the option errors."""
    from medactive.errors import ConfigError

    n_rows = X.shape[0] if hasattr(X, "shape") else len(X)
    if n_rows != scores.size:
        raise ValueError(f"X has {n_rows} rows for {scores.size} scores")
    for option, value in (("candidates_per_pick", candidates_per_pick),
                          ("max_candidates", max_candidates)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name}: {option} must be a positive integer, got {value!r}")
    n_cand = min(scores.size, max(k, min(candidates_per_pick * k, max_candidates)))
    return top_k(scores, n_cand, rng=rng)
