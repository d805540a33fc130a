"""Class-balanced selection on scores: quotas per predicted class, rarest class first.

Uncertainty sampling on an imbalanced pool keeps querying the frequent, confusable classes.
Bengar et al. add to the acquisition an objective that the labeled set, after the query, be
balanced over the classes. We keep that objective in its simplest greedy form:

1. each candidate belongs to the classes it is predicted to contain (``membership [n, c]``:
   classification, its argmax class; segmentation, every class some pixel is predicted as);
2. :func:`balance_quotas` gives the budget to the classes one pick at a time, each pick to the
   class whose labeled count plus quota is lowest (the rarest), among the classes with
   unpicked members left, so the labeled set moves towards balance (with no labeled counts
   the split is as even as the class sizes allow);
3. classes are served rarest first; each takes its quota of highest-scored members not yet
   taken; what a class cannot fill (its members were taken by a rarer class) goes to the
   highest-scored candidates left.

ClaSP PE (Class-stratified Scheduled Power Predictive Entropy, Lüth, Traub et al. 2026, the
nnActive authors) combines a class-stratified share of the budget with power noise whose
strength decays over the rounds. The papers name the two ingredients; we could not read their
code here, so :func:`clasp` is our reading, stated in full:

- scores are noised on the log scale, ``key_i = log s_i + τ g_i`` with ``g_i`` standard
  Gumbel, i.e. power sampling (:func:`~medactive.selection.stochastic.power_sampling`) with
  exponent ``β = 1/τ``;
- the noise scale decays with the round: ``τ_r = τ_0 · decay^r`` (diversity early,
  exploitation later; "a decaying exponent" read as a decaying noise scale, i.e. a growing
  ``β``);
- a share ``class_share`` of the budget is filled by the class quotas above, ranked by the
  noised keys; the rest goes to the highest noised keys overall.

Example:
    >>> import numpy as np
    >>> balance_quotas(np.array([0, 0, 2]), np.array([5, 5, 5]), 4).tolist()
    [2, 2, 0]
    >>> member = np.eye(2, dtype=bool)[[0, 0, 0, 1]]
    >>> class_balanced(np.array([0.9, 0.8, 0.7, 0.1]), member, 2).tolist()
    [3, 0]

References:
    Bengar, van de Weijer, Fuentes, Raducanu, "Class-balanced active learning for image
    classification", WACV 2022.
    Lüth, Traub, Kahl, Bungert, Klein, Krämer, Jaeger, Maier-Hein, Isensee, "Finally
    outshining the random baseline: a simple and effective solution for active learning in 3D
    biomedical imaging", TMLR 2026 (arXiv:2601.13677), within nnActive (arXiv:2511.19183).
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget
from medactive.errors import ConfigError
from medactive.selection.stochastic import check_scores


def check_membership(membership: np.ndarray, n: int) -> np.ndarray:
    """``membership`` as an ``[n, c]`` bool array where every row has a class."""
    membership = np.asarray(membership, dtype=bool)
    if membership.ndim != 2 or membership.shape[0] != n:
        raise ValueError(f"membership must be [{n}, c], got shape {membership.shape}")
    if not membership.any(axis=1).all():
        raise ValueError("every candidate must belong to at least one class")
    return membership


def balance_quotas(have: np.ndarray, available: np.ndarray, k: int) -> np.ndarray:
    """Quotas ``[c]`` summing to ``k`` that make ``have + quota`` as even as possible.

    One pick at a time goes to the class with the lowest ``have + quota`` among those with
    ``quota < available`` (ties: the class with fewer available members, then the lower
    index). With ``have = 0`` the split is as even as ``available`` allows.

    Args:
        have: ``[c]`` labeled count of each class (>= 0).
        available: ``[c]`` candidates of each class (>= 0).
        k: picks, ``1 <= k <= available.sum()``.
    """
    have = np.asarray(have, dtype=np.int64)
    available = np.asarray(available, dtype=np.int64)
    if have.shape != available.shape or have.ndim != 1 or (have < 0).any() \
            or (available < 0).any():
        raise ValueError("have and available must be 1-D arrays of counts >= 0 of one length")
    k = check_budget(k, int(available.sum()))
    quotas = np.zeros_like(available)
    for _ in range(k):
        level = np.where(quotas < available, have + quotas, np.iinfo(np.int64).max)
        c = np.lexsort((np.arange(level.size), available, level))[0]
        quotas[c] += 1
    return quotas


def _serve(keys: np.ndarray, membership: np.ndarray, quotas: np.ndarray,
           taken: np.ndarray) -> list[int]:
    """Classes rarest first (fewest members), each its quota of highest-key free members."""
    picks: list[int] = []
    sizes = membership.sum(axis=0)
    for c in np.lexsort((np.arange(sizes.size), sizes)):
        if quotas[c] == 0:
            continue
        members = np.flatnonzero(membership[:, c] & ~taken)
        chosen = members[np.argsort(-keys[members], kind="stable")[:quotas[c]]]
        taken[chosen] = True
        picks.extend(chosen.tolist())
    return picks


def class_balanced(scores: np.ndarray, membership: np.ndarray, k: int, *,
                   labeled_counts: np.ndarray | None = None) -> np.ndarray:
    """``k`` positions: per-class quotas of the highest scores, rarest class first.

    Args:
        scores: ``[n]`` finite scores (higher = more informative).
        membership: ``[n, c]`` bool, the classes each candidate is predicted to contain.
        k: ``1 <= k <= n``.
        labeled_counts: ``[c]`` labeled samples per class (``None``: zeros).

    Returns:
        ``[k]`` int64 positions, the rarest class's picks first, then any fill-up.
    """
    scores = check_scores(scores)
    k = check_budget(k, scores.size)
    membership = check_membership(membership, scores.size)
    return _balanced(scores, membership, k, labeled_counts)


def _balanced(keys: np.ndarray, membership: np.ndarray, k: int,
              labeled_counts: np.ndarray | None) -> np.ndarray:
    n_classes = membership.shape[1]
    have = np.zeros(n_classes, np.int64) if labeled_counts is None else \
        np.asarray(labeled_counts, dtype=np.int64)
    if have.shape != (n_classes,):
        raise ValueError(f"labeled_counts must have {n_classes} entries, got {have.shape}")
    quotas = balance_quotas(have, membership.sum(axis=0), k)
    taken = np.zeros(keys.size, dtype=bool)
    picks = _serve(keys, membership, quotas, taken)
    if len(picks) < k:  # members shared with a rarer class that took them
        free = np.flatnonzero(~taken)
        picks.extend(free[np.argsort(-keys[free], kind="stable")[:k - len(picks)]].tolist())
    return np.asarray(picks, dtype=np.int64)


def clasp(scores: np.ndarray, membership: np.ndarray, k: int, *, round_index: float = 0.0,
          noise: float = 1.0, decay: float = 0.5, class_share: float = 0.5,
          labeled_counts: np.ndarray | None = None, rng: RandomLike) -> np.ndarray:
    """ClaSP: a class-stratified share of the budget plus power noise that decays by round.

    Args:
        scores: ``[n]`` finite scores ``>= 0`` (the paper: predictive entropy).
        membership: ``[n, c]`` bool, as :func:`class_balanced`.
        k: ``1 <= k <= n``.
        round_index: ``r >= 0``, the round (may be fractional, see the strategy).
        noise: ``τ_0 >= 0``, the noise scale of round 0 (1 = power sampling with ``β = 1``).
        decay: ``0 <= decay <= 1``; ``τ_r = τ_0 · decay^r``.
        class_share: ``0 <= share <= 1`` of ``k`` (rounded) filled by class quotas.
        labeled_counts: ``[c]`` labeled samples per class (``None``: zeros).
        rng: seed or Generator.

    Returns:
        ``[k]`` int64 positions: the class-stratified picks (rarest class first), then the
        rest by noised score.
    """
    scores = check_scores(scores)
    k = check_budget(k, scores.size)
    membership = check_membership(membership, scores.size)
    if (scores < 0).any():
        raise ValueError(f"clasp needs scores >= 0, got a minimum of {scores.min():.3g}")
    for name, value, top in (("noise", noise, np.inf), ("decay", decay, 1.0),
                             ("class_share", class_share, 1.0), ("round_index", round_index,
                                                                  np.inf)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)) \
                or not 0 <= value <= top:
            raise ConfigError(f"clasp: {name} must be a number in [0, {top}], got {value!r}")
    tau = float(noise) * float(decay) ** float(round_index)
    rng = check_random_state(rng)
    with np.errstate(divide="ignore"):
        keys = np.log(scores) + tau * rng.gumbel(size=scores.size)
    n_class = round(float(class_share) * k)
    picks = _balanced(keys, membership, n_class, labeled_counts) if n_class else \
        np.zeros(0, np.int64)
    taken = np.zeros(scores.size, dtype=bool)
    taken[picks] = True
    free = np.flatnonzero(~taken)
    tiebreak = rng.random(free.size)
    rest = free[np.lexsort((tiebreak, -keys[free]))[:k - picks.size]]
    return np.concatenate([picks, rest]).astype(np.int64)
