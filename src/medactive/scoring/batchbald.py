"""BatchBALD: a batch chosen greedily by the joint mutual information of its labels and weights.

For MC-dropout passes ``p_j(y | x)``, ``j = 1..t`` (samples of the weights ``w``), the labels of
a batch ``x_1..x_k`` are independent given ``w``, so

    I(y_1..y_k; w) = H(y_1..y_k) - sum_i E_w H(y_i | w),
    p(y_1..y_k) = (1/t) sum_j prod_i p_j(y_i | x_i).

The second term is a sum of per-point terms (BALD's expected entropy). The joint entropy is
computed as ``H(y_1..y_{k-1}) + E_{y_1..y_{k-1}} H(y_k | y_1..y_{k-1})``: each configuration
``C`` of the already chosen labels carries its probability ``p(C)`` and its posterior over the
passes, ``pi_C(j) ∝ prod_i p_j(C_i)``, and the candidate's predictive given ``C`` is
``sum_j pi_C(j) p_j(y_k)``. Greedy selection adds the candidate with the largest joint mutual
information, which is submodular, so greedy is within ``1 - 1/e`` of the best batch.

- **Exact** while the joint of the batch and a candidate has at most ``max_exact_configs``
  (:data:`MAX_EXACT_CONFIGS`) label configurations ``c^k``: every configuration is enumerated
  with its probability.
- **Sampled** beyond (the paper's estimator, Sec. 3.3): ``M`` configurations of the chosen
  points are drawn from ``p(y_1..y_{k-1})`` by ancestral sampling (a pass ``j_s`` per sample,
  then each chosen label from ``p_{j_s}``; at the switch, from the exact configurations and
  their posteriors), each with its exact ``log p(C_s)`` and posterior; then
  ``H(y_1..y_k) ≈ (1/M) sum_s [-log p(C_s) + H(sum_j pi_s(j) p_j(y_k))]``. The same ``M``
  samples score every candidate, so comparisons between candidates share their noise. Each
  later pick extends every sample by one label drawn from its own pass ``j_s``.

Memory: the state holds ``R <= max(M, max_exact_configs / c)`` configurations, a ``[R, t]``
posterior and ``[R]`` weights and log-probabilities (``8 * R * (t + 2)`` bytes); candidates are
scored in blocks of ``b = max(1, 2**21 // (R * c))``, whose ``[R, b, c]`` predictive and its
logarithm take ``2 * 8 * R * b * c <= 32 MB``, plus the block's ``[t, b * c]`` probabilities.
With the stack itself (``n * c * t`` floats, the caller's) and ``[n]`` per-point vectors, a
budget of 1,000 on a pool of 10^5 with ``c <= 10``, ``t <= 25`` and ``M = 1024`` stays under
50 MB beside the stack. Time is ``O(budget * n * R * t * c)``: ``n_candidates`` (top-n by BALD
first) bounds ``n`` when that is too slow.

Example:
    >>> import numpy as np
    >>> p = np.array([[[1.0, 0.0], [0.0, 1.0]],    # [3, 2, 2]: passes disagree,
    ...               [[1.0, 0.0], [0.0, 1.0]],    # the same point again,
    ...               [[0.0, 1.0], [1.0, 0.0]]])   # disagrees the other way round
    >>> idx, mi = batchbald(p, 2, rng=0)
    >>> int(idx[0]) in (0, 1, 2), mi.round(4).tolist()  # one is worth log 2; a second adds 0
    (True, [0.6931, 0.6931])

References:
    Kirsch, van Amersfoort and Gal, "BatchBALD: Efficient and Diverse Batch Acquisition for
    Deep Bayesian Active Learning", NeurIPS 2019.
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget, check_probas
from medactive.scoring.uncertainty import _entropy

#: the joint of the batch and a candidate is enumerated exactly up to this many configurations
MAX_EXACT_CONFIGS = 1024
#: sampled label configurations ``M`` of the chosen points beyond :data:`MAX_EXACT_CONFIGS`
N_CONFIG_SAMPLES = 1024
#: float64 elements of one block's ``[R, b, c]`` candidate predictive (16 MB)
_BLOCK_ELEMENTS = 1 << 21
#: relative gap under which two candidates tie (the tie is broken by ``rng``)
_TIE = 1e-12
_TINY = np.finfo(np.float64).tiny


def batchbald(mc_probas: np.ndarray, batch_size: int, *, rng: RandomLike = None,
              n_config_samples: int = N_CONFIG_SAMPLES,
              max_exact_configs: int = MAX_EXACT_CONFIGS,
              n_candidates: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy BatchBALD batch of ``batch_size`` points.

    Args:
        mc_probas: ``[n, c, t]`` class probabilities of ``t`` MC-dropout passes
            (classification; a segmentation stack ``[n, c, H, W, t]`` is refused).
        batch_size: points to choose, ``1 <= batch_size <= n``.
        rng: seed or Generator for ties and for the sampled configurations.
        n_config_samples: ``M``, sampled configurations once the joint is not enumerable.
        max_exact_configs: largest number of joint configurations enumerated exactly.
        n_candidates: score only the top-``n_candidates`` points by BALD (at least
            ``batch_size``); ``None`` (default): every point.

    Returns:
        ``(positions [batch_size], joint_mi [batch_size])``: row positions in ``mc_probas``
        in selection order, and ``I(y_1..y_k; w)`` of the first ``k`` picks (nats,
        non-decreasing up to the sampling noise). ``joint_mi[0]`` is the first pick's BALD.

    Raises:
        ValueError: not a ``[n, c, t]`` stack of probabilities, or bad sizes.
    """
    mc_probas = np.asarray(mc_probas)
    if mc_probas.ndim != 3:
        raise ValueError(f"batchbald needs mc_probas [n, c, t] (classification), got shape "
                         f"{mc_probas.shape}")
    mc_probas = check_probas(mc_probas, name="mc_probas")
    batch_size = check_budget(batch_size, mc_probas.shape[0], name="batch_size")
    for name, value in (("n_config_samples", n_config_samples),
                        ("max_exact_configs", max_exact_configs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if n_candidates is not None and (isinstance(n_candidates, bool)
                                     or not isinstance(n_candidates, (int, np.integer))
                                     or n_candidates < 1):
        raise ValueError(f"n_candidates must be an integer >= 1 or None, got {n_candidates!r}")
    return _batchbald(mc_probas, batch_size, check_random_state(rng), int(n_config_samples),
                      int(max_exact_configs), n_candidates)


def _batchbald(stack: np.ndarray, batch_size: int, rng: np.random.Generator,
               n_config_samples: int, max_exact_configs: int, n_candidates: int | None,
               ) -> tuple[np.ndarray, np.ndarray]:
    n, t = stack.shape[0], stack.shape[2]
    expected = _entropy(stack, axis=1).mean(axis=-1)  # [n] E_w H(y_i | w)
    candidates = np.arange(n)
    if n_candidates is not None and n_candidates < n:
        bald = _entropy(stack.mean(axis=-1), axis=1) - expected
        # top-n by BALD, ties in random order (scoring/ does not import selection/)
        order = np.lexsort((rng.random(n), -bald))
        candidates = np.sort(order[:max(int(n_candidates), batch_size)])
    state = _Configurations(t)
    available = np.ones(candidates.size, dtype=bool)
    picks, joint_mi = [], []
    expected_sum = 0.0
    for _ in range(batch_size):
        pool = candidates[available]
        joint = state.entropy() + state.candidate_entropy(stack, pool)
        mi = joint - (expected_sum + expected[pool])
        best = float(mi.max())
        ties = np.flatnonzero(mi >= best - _TIE * max(1.0, abs(best)))
        k = int(ties[0] if ties.size == 1 else rng.choice(ties))
        pick = int(pool[k])
        picks.append(pick)
        joint_mi.append(float(mi[k]))
        expected_sum += float(expected[pick])
        available[np.searchsorted(candidates, pick)] = False
        if len(picks) < batch_size:
            state.add(stack[pick], rng, n_config_samples=n_config_samples,
                      max_exact_configs=max_exact_configs)
    return np.asarray(picks, dtype=np.int64), np.asarray(joint_mi, dtype=np.float64)


class _Configurations:
    """Label configurations ``C`` of the chosen points: weights ``w`` (``p(C)`` exactly, or
    ``1/M`` sampled), ``log p(C)`` and the posterior over passes ``pi_C`` ``[R, t]``."""

    def __init__(self, t: int) -> None:
        self.t = t
        self.weights = np.ones(1)
        self.log_p = np.zeros(1)
        self.posterior = np.full((1, t), 1.0 / t)
        self.passes: np.ndarray | None = None  # [M] latent pass of each sample, once sampled

    def entropy(self) -> float:
        """``H(y_1..y_{k-1})`` (exact, or the sampled estimate ``-mean_s log p(C_s)``)."""
        return float(-(self.weights @ self.log_p))

    def candidate_entropy(self, stack: np.ndarray, pool: np.ndarray) -> np.ndarray:
        """``[len(pool)]`` ``E_C H(y | C)`` for each candidate, in blocks."""
        rows, (_, c, t) = self.posterior.shape[0], stack.shape
        step = max(1, _BLOCK_ELEMENTS // (rows * c))
        out = np.empty(pool.size)
        for start in range(0, pool.size, step):
            block = stack[pool[start:start + step]]                       # [b, c, t]
            probs = block.transpose(2, 0, 1).reshape(t, -1)                # [t, b * c]
            predictive = (self.posterior @ probs).reshape(rows, -1, c)      # [R, b, c]
            out[start:start + step] = self.weights @ _entropy(predictive, axis=2)
        return out

    def add(self, probs: np.ndarray, rng: np.random.Generator, *, n_config_samples: int,
            max_exact_configs: int) -> None:
        """Extend every configuration with the label of a chosen point ``probs`` ``[c, t]``."""
        c = probs.shape[0]
        rows = self.posterior.shape[0]
        if self.passes is None and rows * c * c > max_exact_configs:
            self._sample(n_config_samples, rng)
        if self.passes is None:
            joint = self.posterior[:, None, :] * probs[None, :, :]           # [R, c, t]
            predictive = joint.sum(axis=2)                                   # [R, c]
            keep = (predictive > 0).reshape(-1)
            self.weights = (self.weights[:, None] * predictive).reshape(-1)[keep]
            self.log_p = (self.log_p[:, None] + _log(predictive)).reshape(-1)[keep]
            self.posterior = (joint / np.where(predictive > 0, predictive, 1.0)[..., None]
                              ).reshape(-1, self.t)[keep]
            return
        labels = _draw(probs.T[self.passes], rng)                            # [M]
        likelihood = probs[labels]                                           # [M, t]
        predictive = np.maximum((self.posterior * likelihood).sum(axis=1), _TINY)  # [M]
        self.log_p = self.log_p + _log(predictive)
        self.posterior = self.posterior * likelihood / predictive[:, None]

    def _sample(self, m: int, rng: np.random.Generator) -> None:
        """Replace the exact configurations by ``m`` draws ``(C_s, j_s)`` of the joint of the
        configurations and the pass (``C ~ p(C)``, then ``j ~ pi_C``)."""
        rows = rng.choice(self.weights.size, size=m, p=self.weights / self.weights.sum())
        self.posterior = self.posterior[rows]
        self.log_p = self.log_p[rows]
        self.passes = _draw(self.posterior, rng)
        self.weights = np.full(m, 1.0 / m)


def _draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of ``[m, k]`` probabilities (inverse CDF, one uniform a row)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cdf[:, -1]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), probs.shape[1] - 1)


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.where(x > 0, x, _TINY))
