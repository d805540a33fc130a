"""Stratified random sampling: a budget split as evenly as possible over groups.

Example:
    >>> balanced_quotas(np.array([1, 10, 10]), 9, rng=0).tolist()
    [1, 4, 4]
    >>> groups = np.array([0, 0, 0, 1, 1, 2])
    >>> sorted(groups[stratified_random(groups, 3, rng=0)].tolist())
    [0, 1, 2]
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget


def balanced_quotas(counts: np.ndarray, k: int, *, rng: RandomLike) -> np.ndarray:
    """How many of ``k`` picks each group gets: as even as the group sizes allow.

    Water-filling: every group with members left gets ``floor(remaining / n_open)``, capped at
    its size; what a small group cannot take goes to the others; when fewer picks remain than
    open groups, the remainder goes to that many open groups drawn uniformly at random.

    Args:
        counts: ``[g]`` group sizes (>= 0).
        k: picks, ``1 <= k <= counts.sum()``.
        rng: seed or Generator (draws the groups that get a remainder).

    Returns:
        ``[g]`` int64 quotas, ``0 <= quota <= counts``, summing to ``k``.

    Raises:
        ValueError: negative counts or counts not 1-D.
        ConfigError: ``k`` larger than ``counts.sum()`` or smaller than 1.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError(f"counts must be a 1-D array of sizes >= 0, got {counts!r}")
    k = check_budget(k, int(counts.sum()))
    rng = check_random_state(rng)
    quotas = np.zeros_like(counts)
    remaining = k
    while remaining > 0:
        open_groups = np.flatnonzero(quotas < counts)
        share, rest = divmod(remaining, open_groups.size)
        if share == 0:
            quotas[rng.choice(open_groups, size=rest, replace=False)] += 1
            break
        give = np.minimum(share, counts[open_groups] - quotas[open_groups])
        quotas[open_groups] += give
        remaining -= int(give.sum())
    return quotas


def stratified_random(groups: np.ndarray, k: int, *, rng: RandomLike) -> np.ndarray:
    """``k`` distinct positions drawn uniformly within groups, split by :func:`balanced_quotas`.

    Args:
        groups: ``[n]`` group label of each candidate (any hashable values numpy can sort).
        k: picks, ``1 <= k <= n``.
        rng: seed or Generator; the same value gives the same positions.

    Returns:
        ``[k]`` int64 positions into ``groups``, in random order (the order says nothing about
        the group).
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"groups must be 1-D, got shape {groups.shape}")
    k = check_budget(k, groups.size)
    rng = check_random_state(rng)
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    quotas = balanced_quotas(counts, k, rng=rng)
    picks = [rng.choice(np.flatnonzero(inverse == g), size=int(q), replace=False)
             for g, q in enumerate(quotas.tolist()) if q]
    return rng.permutation(np.concatenate(picks)).astype(np.int64)
