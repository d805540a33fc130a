"""Seeded train/val/test splits, stratified by class and optionally grouped by patient.

One function serves every loader: NCT-CRC-HE's 9:1 train/val split (one group per patch), the
image-folder loader's default split and ISIC 2020's 6:1:3 split by patient. Grouping keeps all
samples of a patient in one split, so a model is never tested on a patient it was trained on (the
survey's released ISIC split leaks 1,846 patients between train and test).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive.errors import DataError


def split_indices(labels: np.ndarray, fractions: Sequence[float], *,
                  groups: np.ndarray | None = None,
                  random_state: RandomLike = 0) -> list[np.ndarray]:
    """Split samples into ``len(fractions)`` parts, stratified by label, never splitting a group.

    Each group (patient) gets a stratum: the rarest class among its samples, so that patients with
    a rare (e.g. malignant) lesion are spread over all splits in proportion. Within a stratum the
    groups are shuffled and spread evenly; all groups are then cut so that each split receives
    about ``fraction`` of the *samples* overall and of each stratum. If a stratum has at least as many groups as there are splits, every split gets at
    least one of them (a small group is moved from the largest split when needed).

    Args:
        labels: ``[n]`` int class labels.
        fractions: one positive fraction per split, summing to 1 (e.g. ``(0.6, 0.1, 0.3)``).
        groups: ``[n]`` group ids (any hashable dtype) or ``None`` (each sample its own group).
        random_state: seed or Generator.

    Returns:
        One sorted ``int64`` index array per split; together they partition ``range(n)``.

    Example:
        >>> parts = split_indices(np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), (0.5, 0.5))
        >>> sorted(len(p) for p in parts)
        [5, 5]
    """
    labels = np.asarray(labels).reshape(-1)
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or fractions.size < 1 or np.any(fractions <= 0):
        raise DataError(f"split fractions must be positive, got {list(fractions)}")
    if not np.isclose(fractions.sum(), 1.0):
        raise DataError(f"split fractions must sum to 1, got {list(fractions)}")
    n = labels.shape[0]
    if groups is None:
        group_idx = np.arange(n)
    else:
        groups = np.asarray(groups).reshape(-1)
        if groups.shape[0] != n:
            raise DataError(f"{n} labels but {groups.shape[0]} group ids")
        _, group_idx = np.unique(groups, return_inverse=True)
    rng = check_random_state(random_state)
    n_groups = int(group_idx.max()) + 1 if n else 0
    group_size = np.bincount(group_idx, minlength=n_groups)

    # Stratum of a group: its rarest class (by global count), ties to the smaller label.
    classes, class_idx = np.unique(labels, return_inverse=True)
    class_count = np.bincount(class_idx, minlength=classes.size)
    rarity = np.argsort(np.argsort(class_count, kind="stable"), kind="stable")  # 0 = rarest
    stratum = np.full(n_groups, classes.size, dtype=np.int64)
    np.minimum.at(stratum, group_idx, rarity[class_idx])

    # Each group gets a position in [0, 1) spread evenly within its stratum (the midpoint of its
    # shuffled cumulative share); cutting all groups, ordered by position, at the global sample
    # fractions gives near-exact split sizes and near-proportional strata at once.
    position = np.empty(n_groups)
    for s in range(classes.size):
        members = np.flatnonzero(stratum == s)
        if members.size == 0:
            continue
        members = members[rng.permutation(members.size)]
        cum = np.cumsum(group_size[members])
        position[members] = (cum - group_size[members] / 2.0) / cum[-1]
    order = np.lexsort((rng.random(n_groups), position))
    cum = np.cumsum(group_size[order])
    midpoints = (cum - group_size[order] / 2.0) / max(n, 1)
    group_split = np.empty(n_groups, dtype=np.int64)
    group_split[order] = np.searchsorted(np.cumsum(fractions)[:-1], midpoints, side="right")
    for s in range(classes.size):
        members = np.flatnonzero(stratum == s)
        assigned = group_split[members]
        _cover_all_splits(members, group_size[members], assigned, fractions.size)
        group_split[members] = assigned
    sample_split = group_split[group_idx]
    return [np.flatnonzero(sample_split == k).astype(np.int64) for k in range(fractions.size)]


def _cover_all_splits(members: np.ndarray, sizes: np.ndarray, assigned: np.ndarray,
                      n_splits: int) -> None:
    """Give every split at least one group of this stratum when there are enough groups."""
    if members.size < n_splits:
        return
    for k in range(n_splits):
        if np.any(assigned == k):
            continue
        counts = np.bincount(assigned, minlength=n_splits)
        donor = int(np.argmax(counts))
        candidates = np.flatnonzero(assigned == donor)
        # Move the donor's smallest group.
        move = candidates[np.argmin(sizes[candidates])]
        assigned[move] = k
