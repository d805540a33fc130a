"""k-DPP: a batch drawn with probability ∝ det of a score-weighted similarity kernel.

A determinantal point process over ``N`` items with PSD kernel ``L`` gives a set ``Y`` the
probability ``∝ det(L_Y)``; the k-DPP conditions on ``|Y| = k``. With the quality/diversity
decomposition ``L_ij = q_i S_ij q_j`` (``S`` a similarity, ``q`` a quality), ``det(L_Y) =
(∏ q_i^2) det(S_Y)``: sets of informative *and* mutually dissimilar samples are likely. Here
``q`` is the score rescaled to ``(floor, 1]`` and ``S`` an RBF kernel on embeddings with the
median pairwise distance as bandwidth (full rank for distinct points, unlike a linear kernel
whose rank is the embedding width).

Exact sampling (Kulesza and Taskar, Algorithms 1 and 8): eigendecompose ``L``, choose ``k``
eigenvectors with the elementary symmetric polynomials of the eigenvalues (computed in log
space, so ``N`` in the thousands does not overflow), then draw the ``k`` items of the
projection DPP one by one, conditioning by an incremental Cholesky update. Bound: time
``O(N^3 + N k^2)``, memory ``O(N^2 + N k)`` for ``N`` candidates, so the strategy runs it on
the ``N = min(n, max(k, min(m k, max_candidates)))`` top-scored candidates (default cap 2,000:
a 32 MB kernel, a few seconds), never on the pool. A jitter ``1e-6 · mean(diag L)`` on the
diagonal keeps the k-DPP defined when candidates repeat.

Example:
    >>> import numpy as np
    >>> sorted(sample_kdpp(np.eye(4), 4, rng=0).tolist())
    [0, 1, 2, 3]

References:
    Kulesza and Taskar, "k-DPPs: fixed-size determinantal point processes", ICML 2011;
    Kulesza and Taskar, "Determinantal point processes for machine learning", Foundations and
    Trends in Machine Learning 2012; Bıyık, Wang, Anari and Sadigh, "Batch active learning
    using determinantal point processes", 2019.
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget
from medactive.errors import ConfigError
from medactive.selection.stochastic import check_scores

#: default cap on the candidates of a k-DPP (kernel 8 N^2 bytes, eigendecomposition O(N^3))
MAX_CANDIDATES = 2000


def _log_esp(log_lam: np.ndarray, k: int) -> np.ndarray:
    """``E[l, n] = log e_l(λ_1..λ_n)`` for ``l <= k``, ``n <= N`` (``[k + 1, N + 1]``)."""
    n = log_lam.size
    E = np.full((k + 1, n + 1), -np.inf)
    E[0, :] = 0.0
    for j in range(1, n + 1):
        E[1:, j] = np.logaddexp(E[1:, j - 1], log_lam[j - 1] + E[:-1, j - 1])
    return E


def sample_kdpp(L: np.ndarray, k: int, *, rng: RandomLike) -> np.ndarray:
    """Exact draw of a k-DPP with kernel ``L``.

    Args:
        L: ``[N, N]`` symmetric positive semi-definite kernel.
        k: set size, ``1 <= k <= N``; the k-DPP must be defined (``rank(L) >= k``).
        rng: seed or Generator.

    Returns:
        ``[k]`` int64 distinct positions, in the order they were drawn.
    """
    L = np.asarray(L, dtype=np.float64)
    if L.ndim != 2 or L.shape[0] != L.shape[1] or not np.all(np.isfinite(L)):
        raise ValueError(f"L must be a finite square matrix, got shape {L.shape}")
    k = check_budget(k, L.shape[0])
    rng = check_random_state(rng)
    lam, V = np.linalg.eigh((L + L.T) / 2)
    lam = np.clip(lam, 0.0, None)
    with np.errstate(divide="ignore"):
        log_lam = np.log(lam)
    E = _log_esp(log_lam, k)
    if not np.isfinite(E[k, -1]):
        raise ValueError(f"the k-DPP is not defined: rank(L) < k = {k}")
    chosen, remaining = [], k
    for n in range(L.shape[0], 0, -1):  # Algorithm 8: eigenvector n kept w.p. λ e_{l-1}/e_l
        if remaining == 0:
            break
        if n == remaining or np.log(rng.random()) < (log_lam[n - 1] + E[remaining - 1, n - 1]
                                                     - E[remaining, n]):
            chosen.append(n - 1)
            remaining -= 1
    return _sample_projection(V[:, chosen], rng)


def _sample_projection(V: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw the ``k`` items of the projection DPP ``K = V Vᵀ`` (``V`` ``[N, k]`` orthonormal):
    item ``i`` next w.p. ``∝`` its conditional variance ``K_ii - K_iS K_SS^{-1} K_Si``."""
    n, k = V.shape
    d = np.einsum("ij,ij->i", V, V)
    C = np.zeros((n, k))
    picks = []
    for j in range(k):
        p = np.clip(d, 0.0, None)
        p[picks] = 0.0
        i = int(rng.choice(n, p=p / p.sum()))
        picks.append(i)
        e = (V @ V[i] - C[:, :j] @ C[i, :j]) / np.sqrt(max(d[i], 1e-300))
        C[:, j] = e
        d = d - e**2
    return np.asarray(picks, dtype=np.int64)


def quality_kernel(X: np.ndarray, scores: np.ndarray, *, floor: float = 1e-3,
                   bandwidth: float | None = None) -> np.ndarray:
    """``L = diag(q) S diag(q)``, ``S_ij = exp(-|x_i - x_j|^2 / (2 h^2))``.

    Args:
        X: ``[N, d]`` embeddings.
        scores: ``[N]`` finite scores; ``q = floor + (1 - floor) (s - min) / (max - min)``
            (all ones when the scores are equal).
        floor: ``0 < floor <= 1``, the quality of the lowest score (keeps every item
            possible).
        bandwidth: ``h``; ``None`` = the median pairwise distance (1 if that is 0).

    Returns:
        ``[N, N]`` float64 PSD kernel.
    """
    from scipy.spatial.distance import pdist, squareform

    scores = check_scores(scores)
    X = np.asarray(X, dtype=np.float64).reshape(scores.size, -1)
    if not 0 < floor <= 1:
        raise ConfigError(f"kdpp: floor must be in (0, 1], got {floor!r}")
    span = scores.max() - scores.min()
    q = np.ones_like(scores) if span == 0 else floor + (1 - floor) * (scores - scores.min()) / span
    sq = squareform(pdist(X, "sqeuclidean")) if scores.size > 1 else np.zeros((1, 1))
    if bandwidth is None:
        med = float(np.sqrt(np.median(sq[np.triu_indices(scores.size, 1)]))) \
            if scores.size > 1 else 0.0
        bandwidth = med if med > 0 else 1.0
    S = np.exp(-sq / (2.0 * bandwidth**2))
    return q[:, None] * S * q[None, :]


def kdpp_select(X: np.ndarray, scores: np.ndarray, k: int, *, rng: RandomLike,
                candidates_per_pick: int = 10, max_candidates: int = MAX_CANDIDATES,
                floor: float = 1e-3) -> np.ndarray:
    """``k`` positions by a k-DPP on the top-scored candidates (:func:`quality_kernel`).

    Args:
        X: ``[n, d]`` embeddings (only the candidates' rows are read: a lazy
            :class:`~medactive.predictions.FieldRows` fetches just those); scores: ``[n]``; k: ``1 <= k <= n``; rng: seed or Generator.
        candidates_per_pick: ``m``; the ``N = min(n, max(k, min(m k, max_candidates)))``
            top-scored samples are the k-DPP's ground set.
        max_candidates: cap on ``N`` (see the module's bound), unless ``k`` is larger.
        floor: lowest quality, see :func:`quality_kernel`.

    Returns:
        ``[k]`` int64 positions into ``scores`` in draw order.
    """
    from medactive.selection.topk import top_candidates

    scores = check_scores(scores)
    k = check_budget(k, scores.size)
    rng = check_random_state(rng)
    cand = top_candidates(scores, X, k, candidates_per_pick=candidates_per_pick,
                          max_candidates=max_candidates, rng=rng, name="kdpp")
    L = quality_kernel(np.asarray(X[cand]), scores[cand], floor=floor)
    L[np.diag_indices_from(L)] += 1e-6 * float(np.mean(np.diag(L)))
    return cand[sample_kdpp(L, k, rng=rng)]
