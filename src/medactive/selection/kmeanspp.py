"""k-means++ seeding on an :class:`~medactive.selection.embedding.Embedding`.

Each step needs only the squared distances from all points to the newest centre, which the
embedding computes from norms and inner products; the running minimum ``closest[i]`` (squared
distance to the nearest chosen centre) is updated in place. Time ``O(k · cost(dot))``, memory
``O(n)`` beyond the embedding: for BADGE's factorised gradients ``O(k n (c + d))`` instead of
``O(k n c d)``, and no ``[n, c*d]`` matrix.

With ``lazy_updates = B > 1`` the pool's distances to new seeds are applied once every ``B``
picks, as one ``[n, B]`` matrix product (compute-bound) instead of ``B`` matrix-vector products
(memory-bound: at 10^6 × 512 float32 each reads 2 GB). Between two updates a draw from the
stale weights ``w_i >= D²(i)`` is accepted with probability ``D²(i) / w_i``, where ``D²(i)``
takes the few seeds since the update into account (rejection sampling): every pick follows the
exact D² law, only the random stream (so the picks for a given seed) differs from ``B = 1``.

The embedding may hold torch tensors (``--selection-device cuda``): distances, running minima
and cumulative sums then stay on the device, every random draw is made on the host by the
same numpy Generator, and only each pick's index and distance come back, so numpy and torch
pick the same indices (up to rounding of the distances).

Example:
    >>> import numpy as np
    >>> from medactive.selection.embedding import DenseEmbedding
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> idx, _ = kmeans_plusplus(DenseEmbedding(X), 2, rng=0, first="max_norm")
    >>> sorted(idx.tolist()) in ([0, 3], [1, 3])
    True
"""

from __future__ import annotations

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget
from medactive.scoring._arrays import asarray_like, minimum_into, namespace, positions_like, to_host
from medactive.selection.embedding import Embedding


def kmeans_plusplus(embedding: Embedding, n_clusters: int, *, rng: RandomLike = None,
                    first: str = "random", n_local_trials: int = 1, lazy_updates: int = 1,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Choose ``n_clusters`` distinct seeds by D² sampling.

    Args:
        embedding: ``n`` vectors (dense or factorised).
        n_clusters: number of seeds ``k``, ``1 <= k <= n``.
        rng: seed or Generator.
        first: ``"random"`` (uniform, as in Arthur and Vassilvitskii) or ``"max_norm"`` (the
            vector of largest norm, as in BADGE's reference implementation).
        n_local_trials: candidates drawn per step; the one that most reduces the potential is
            kept ("greedy k-means++", scikit-learn's default is ``2 + log k``). ``1`` is plain
            D² sampling, the algorithm of BADGE.
        lazy_updates: apply the distances to new seeds to the whole pool every this many picks
            (see the module docstring: same law, fewer passes, other random stream). ``1`` =
            one pass per pick, the classic loop. Needs ``n_local_trials == 1``.

    Returns:
        ``(positions, sq_dists)``: ``[k]`` positions into ``embedding`` in selection order and
        ``[k]`` the squared distance of each pick to the nearest earlier pick at the time it was
        chosen (for the first pick, its squared norm).

    When every remaining point coincides with a chosen seed (potential 0), the next seeds are
    drawn uniformly from the points not chosen yet, so ``k`` distinct positions always come
    back.

    References:
        Arthur and Vassilvitskii, "k-means++: the advantages of careful seeding", SODA 2007;
        Ash et al., "Deep batch active learning by diverse, uncertain gradient lower bounds",
        ICLR 2020.
    """
    n_clusters = check_budget(n_clusters, len(embedding), name="n_clusters")
    if first not in ("random", "max_norm"):
        raise ValueError(f"first must be 'random' or 'max_norm', got {first!r}")
    if n_local_trials < 1:
        raise ValueError(f"n_local_trials must be at least 1, got {n_local_trials}")
    if lazy_updates < 1:
        raise ValueError(f"lazy_updates must be at least 1, got {lazy_updates}")
    if lazy_updates > 1 and n_local_trials > 1:
        raise ValueError("lazy_updates > 1 needs n_local_trials == 1 (plain D² sampling)")
    rng = check_random_state(rng)
    if lazy_updates > 1:
        return _lazy_kmeans_plusplus(embedding, n_clusters, rng, first, int(lazy_updates))
    return _kmeans_plusplus(embedding, n_clusters, rng, first, int(n_local_trials))


def _first(sq_norms: np.ndarray, rng: np.random.Generator, first: str,
           weights: np.ndarray | None) -> int:
    if first == "max_norm":
        return int(namespace(sq_norms).argmax(sq_norms))
    if weights is None:
        return int(rng.integers(sq_norms.shape[0]))
    weights = to_host(weights)
    return int(rng.choice(sq_norms.shape[0], p=weights / weights.sum()))


def _draw(cumulative, mass, draws: np.ndarray) -> np.ndarray:
    """``[k]`` host positions where the host ``draws`` fall in ``cumulative`` (D² sampling)."""
    xp = namespace(cumulative)
    found = to_host(xp.searchsorted(cumulative, asarray_like(cumulative, draws), side="right"))
    if (found >= cumulative.shape[0]).any():  # a draw rounding up to the total fell off the end:
        last = int(to_host(xp.nonzero(mass > 0)[0])[-1])  # take the last mass
        found = np.minimum(found, last)
    return np.asarray(found, dtype=np.int64)


def _start(embedding: Embedding, n_clusters: int, rng: np.random.Generator, first: str,
           weights: np.ndarray | None):
    """``(sq_norms, chosen, picks, picked_d2, center)`` after the first pick of k-means++."""
    sq_norms = embedding.sq_norms()  # on the embedding's backend (numpy, or a device)
    chosen = np.zeros(len(embedding), dtype=bool)  # host bookkeeping
    picks = np.empty(n_clusters, dtype=np.int64)
    picked_d2 = np.empty(n_clusters, dtype=np.float64)
    center = _first(sq_norms, rng, first, weights)
    picks[0], picked_d2[0] = center, float(sq_norms[center])
    chosen[center] = True
    return sq_norms, chosen, picks, picked_d2, center


def _kmeans_plusplus(embedding: Embedding, n_clusters: int, rng: np.random.Generator,
                     first: str, n_local_trials: int, weights: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """D² sampling; with ``weights`` ``[n]`` (``>= 0``, not all 0), ``w_i D²(i)`` sampling."""
    sq_norms, chosen, picks, picked_d2, center = _start(embedding, n_clusters, rng, first,
                                                        weights)
    closest = embedding.sq_distances(np.array([center]), sq_norms)[:, 0]
    closest[center] = 0.0

    xp = namespace(closest)
    for step in range(1, n_clusters):
        mass = closest if weights is None else closest * weights
        potential = float(xp.sum(mass))
        if potential <= 0.0:
            center = int(rng.choice(np.flatnonzero(~chosen)))
            d2_center = embedding.sq_distances(np.array([center]), sq_norms)[:, 0]
        else:
            cumulative = xp.cumulative_sum(mass)
            draws = rng.random(n_local_trials) * float(cumulative[-1])  # on the host
            candidates = _draw(cumulative, mass, draws)
            d2 = embedding.sq_distances(candidates, sq_norms)
            if n_local_trials == 1:
                best = 0
            else:
                reduced = xp.minimum(closest[:, None], d2)
                if weights is not None:
                    reduced = reduced * weights[:, None]
                best = int(xp.argmin(xp.sum(reduced, axis=0)))
            center, d2_center = int(candidates[best]), d2[:, best]
        picks[step], picked_d2[step] = center, float(closest[center])
        chosen[center] = True
        closest = minimum_into(closest, d2_center)
        closest[center] = 0.0  # rounding may leave a tiny distance to itself
    return picks, picked_d2


def _lazy_kmeans_plusplus(embedding: Embedding, n_clusters: int, rng: np.random.Generator,
                          first: str, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain D² sampling with pool updates every ``batch`` picks (rejection sampling between)."""
    sq_norms, chosen, picks, picked_d2, center = _start(embedding, n_clusters, rng, first, None)
    closest = embedding.min_sq_distances(np.array([center]), sq_norms)[0]
    closest[center] = 0.0
    xp = namespace(closest)
    cumulative = xp.cumulative_sum(closest)
    pending: list[int] = []  # seeds not yet applied to `closest`
    rejected = 0
    step = 1
    while step < n_clusters:
        total = float(cumulative[-1])
        if pending and (len(pending) >= batch or rejected >= batch or total <= 0.0):
            # one pass: the pool's distances to the pending seeds, as one matrix product
            closest = minimum_into(
                closest, embedding.min_sq_distances(np.array(pending), sq_norms)[0])
            closest[positions_like(closest, picks[:step])] = 0.0  # the chosen ones
            cumulative = xp.cumulative_sum(closest)
            total = float(cumulative[-1])
            pending, rejected = [], 0
        if total <= 0.0:  # every remaining point coincides with a seed
            center, current = int(rng.choice(np.flatnonzero(~chosen))), 0.0
        else:
            center = int(_draw(cumulative, closest, np.array([rng.random() * total]))[0])
            stale = float(closest[center])
            current = 0.0 if chosen[center] else stale
            if pending and current > 0.0:
                sub = embedding.take(np.array([center, *pending]))
                d2 = sub.sq_distances(np.arange(1, len(pending) + 1))[0]
                current = min(current, float(namespace(d2).min(d2)))
            if rng.random() * stale >= current:  # accept with probability current / stale
                rejected += 1
                continue
        picks[step], picked_d2[step] = center, current
        chosen[center] = True
        pending.append(center)
        step += 1
    return picks, picked_d2
