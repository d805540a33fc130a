"""Stochastic batch acquisition: sample a batch at random, biased towards high scores.

Top-k on a score picks near-duplicates when the informative samples sit together, and
re-scoring after every pick is expensive. Kirsch et al. show that drawing the batch at random
with probabilities that grow with the score is a strong, cheap baseline; the three weightings
of their paper (and of baal's stochastic heuristics) are:

- ``power``: ``p_i ∝ s_i^β`` (scores must be >= 0; a zero score is never drawn while
  positive ones remain);
- ``softmax``: ``p_i ∝ exp(β s_i)``;
- ``rank``: ``p_i ∝ r_i^{-β}``, ``r_i`` the rank of ``s_i`` (1 = highest; ties broken at
  random).

``β = 0`` is uniform random sampling and ``β → ∞`` is top-k. The batch is drawn *without
replacement*, exactly, by the Gumbel-top-k trick: with ``g_i`` i.i.d. standard Gumbel, the
``k`` largest ``log w_i + g_i`` are distributed as ``k`` successive draws without replacement
with probabilities ``∝ w_i`` (Kool, van Hoof and Welling 2019). No loop over picks, ``O(n)``
memory, so it runs on pools of 10^6.

:func:`stochastic_batches` is the batch-level variant of Gaillochet et al.: the candidates are
split at random into disjoint batches of size ``k`` and the batch with the highest mean score
is kept.

Example:
    >>> import numpy as np
    >>> s = np.array([0.1, 0.9, 0.5, 0.7])
    >>> power_sampling(s, 2, beta=1e9, rng=0).tolist()  # β → ∞: top-k
    [1, 3]
    >>> sorted(power_sampling(s, 4, beta=1.0, rng=0).tolist())
    [0, 1, 2, 3]

References:
    Kirsch, Farquhar, Atighehchian, Jesson, Branchaud-Charron and Gal, "Stochastic batch
    acquisition: a simple baseline for deep active learning", TMLR 2023.
    Kool, van Hoof and Welling, "Stochastic beams and where to find them: the Gumbel-top-k
    trick for sampling sequences without replacement", ICML 2019.
    Gaillochet, Desrosiers and Lombaert, "Active learning for medical image segmentation with
    stochastic batches", Medical Image Analysis 2023.
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget
from medactive.errors import ConfigError


def check_scores(scores: np.ndarray, *, name: str = "scores") -> np.ndarray:
    """``scores`` as a finite 1-D float64 array (``ValueError`` otherwise)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{name} contain {int(np.sum(~np.isfinite(scores)))} NaN or infinite "
                         "values")
    return scores


def check_beta(beta: float, *, name: str = "beta") -> float:
    """``beta`` as a float ``>= 0`` (``ConfigError`` otherwise)."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.integer, np.floating)) \
            or not np.isfinite(beta) or beta < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {beta!r}")
    return float(beta)


def gumbel_top_k(log_weights: np.ndarray, k: int, *, rng: RandomLike) -> np.ndarray:
    """``k`` positions drawn without replacement with probabilities ``∝ exp(log_weights)``.

    Args:
        log_weights: ``[n]`` log of the unnormalised weights; ``-inf`` = weight 0 (drawn, in
            random order, only after every positive weight).
        k: ``1 <= k <= n``.
        rng: seed or Generator.

    Returns:
        ``[k]`` int64 positions in draw order (the first is a draw from the whole pool, the
        second from the rest, ...).
    """
    log_weights = np.asarray(log_weights, dtype=np.float64)
    if log_weights.ndim != 1 or np.isnan(log_weights).any() or (log_weights == np.inf).any():
        raise ValueError("log_weights must be 1-D, without NaN or +inf")
    k = check_budget(k, log_weights.size)
    rng = check_random_state(rng)
    keys = log_weights + rng.gumbel(size=log_weights.size)
    tiebreak = rng.random(log_weights.size)  # orders the -inf keys at random
    order = np.lexsort((tiebreak, -keys))
    return order[:k].astype(np.int64)


def power_sampling(scores: np.ndarray, k: int, *, beta: float = 1.0,
                   rng: RandomLike) -> np.ndarray:
    """``k`` positions without replacement, ``p_i ∝ s_i^β`` (PowerBALD when ``s`` is BALD).

    Args:
        scores: ``[n]`` finite scores ``>= 0`` (higher = more informative).
        k: ``1 <= k <= n``.
        beta: exponent ``β >= 0`` (Kirsch et al.: 1).
        rng: seed or Generator.

    Returns:
        ``[k]`` int64 positions into ``scores``, in draw order.
    """
    scores = check_scores(scores)
    beta = check_beta(beta)
    if (scores < 0).any():
        raise ValueError(f"power sampling needs scores >= 0, got a minimum of {scores.min():.3g}")
    with np.errstate(divide="ignore"):
        log_w = beta * np.log(scores) if beta > 0 else np.zeros_like(scores)
    return gumbel_top_k(log_w, k, rng=rng)


def softmax_sampling(scores: np.ndarray, k: int, *, beta: float = 1.0,
                     rng: RandomLike) -> np.ndarray:
    """``k`` positions without replacement, ``p_i ∝ exp(β s_i)`` (softmax with temperature
    ``1/β``).

    Args: as :func:`power_sampling`; scores may be negative.
    """
    scores = check_scores(scores)
    beta = check_beta(beta)
    return gumbel_top_k(beta * scores, k, rng=rng)


def score_ranks(scores: np.ndarray, *, rng: RandomLike) -> np.ndarray:
    """``[n]`` ordinal ranks, 1 = highest score; ties get consecutive ranks in random order."""
    scores = check_scores(scores)
    rng = check_random_state(rng)
    order = np.lexsort((rng.random(scores.size), -scores))
    ranks = np.empty(scores.size, dtype=np.int64)
    ranks[order] = np.arange(1, scores.size + 1)
    return ranks


def rank_sampling(scores: np.ndarray, k: int, *, beta: float = 1.0,
                  rng: RandomLike) -> np.ndarray:
    """``k`` positions without replacement, ``p_i ∝ r_i^{-β}`` with ``r_i`` the rank of
    ``s_i`` (1 = highest). Only the order of the scores matters, not their scale.

    Args: as :func:`power_sampling`; scores may be negative.
    """
    beta = check_beta(beta)
    rng = check_random_state(rng)
    ranks = score_ranks(scores, rng=rng)
    return gumbel_top_k(-beta * np.log(ranks), k, rng=rng)


def random_batches(n: int, k: int, *, n_batches: int | None = None,
                   rng: RandomLike) -> np.ndarray:
    """Disjoint random batches of size ``k`` over ``range(n)``.

    Args:
        n: number of candidates.
        k: batch size, ``1 <= k <= n``.
        n_batches: how many batches (at most ``n // k``, the default: a random partition of
            ``n // k · k`` candidates, the last ``n mod k`` left out).
        rng: seed or Generator.

    Returns:
        ``[n_batches, k]`` int64 positions.
    """
    k = check_budget(k, n)
    most = n // k
    if n_batches is None:
        n_batches = most
    elif isinstance(n_batches, bool) or not isinstance(n_batches, (int, np.integer)) \
            or n_batches < 1:
        raise ConfigError(f"n_batches must be a positive integer or None, got {n_batches!r}")
    n_batches = min(int(n_batches), most)
    perm = check_random_state(rng).permutation(n)
    return perm[:n_batches * k].reshape(n_batches, k).astype(np.int64)


def stochastic_batches(scores: np.ndarray, k: int, *, n_batches: int | None = None,
                       rng: RandomLike) -> np.ndarray:
    """The random batch of size ``k`` with the highest mean score (Gaillochet et al. 2023).

    Args:
        scores: ``[n]`` finite scores.
        k: batch size, ``1 <= k <= n``.
        n_batches: candidate batches drawn by :func:`random_batches` (default: every batch
            of a random partition, ``n // k``).
        rng: seed or Generator; the batches are those of ``random_batches(n, k, n_batches,
            rng=rng)`` for the same seed.

    Returns:
        ``[k]`` int64 positions, highest score first. Ties between batches: the first drawn.
    """
    scores = check_scores(scores)
    batches = random_batches(scores.size, k, n_batches=n_batches, rng=rng)
    best = batches[int(np.argmax(scores[batches].mean(axis=1)))]
    return best[np.argsort(-scores[best], kind="stable")]
