"""k-means++ seeding on an :class:`~medactive.selection.embedding.Embedding`.

Each step needs only the squared distances from all points to the newest centre, which the
embedding computes from norms and inner products; the running minimum ``closest[i]`` (squared
distance to the nearest chosen centre) is updated in place. Time ``O(k · cost(dot))``, memory
``O(n)`` beyond the embedding: for BADGE's factorised gradients ``O(k n (c + d))`` instead of
``O(k n c d)``, and no ``[n, c*d]`` matrix.

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
from medactive.selection.embedding import Embedding


def kmeans_plusplus(embedding: Embedding, n_clusters: int, *, rng: RandomLike = None,
                    first: str = "random", n_local_trials: int = 1,
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
    return _kmeans_plusplus(embedding, n_clusters, check_random_state(rng), first,
                            int(n_local_trials))


def _kmeans_plusplus(embedding: Embedding, n_clusters: int, rng: np.random.Generator,
                     first: str, n_local_trials: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(embedding)
    sq_norms = embedding.sq_norms()
    chosen = np.zeros(n, dtype=bool)
    picks = np.empty(n_clusters, dtype=np.int64)
    picked_d2 = np.empty(n_clusters, dtype=np.float64)

    center = int(np.argmax(sq_norms)) if first == "max_norm" else int(rng.integers(n))
    picks[0], picked_d2[0] = center, sq_norms[center]
    chosen[center] = True
    closest = embedding.sq_distances(np.array([center]), sq_norms)[:, 0]
    closest[center] = 0.0

    for step in range(1, n_clusters):
        potential = float(closest.sum())
        if potential <= 0.0:
            center = int(rng.choice(np.flatnonzero(~chosen)))
            d2_center = embedding.sq_distances(np.array([center]), sq_norms)[:, 0]
        else:
            cumulative = np.cumsum(closest)
            draws = rng.random(n_local_trials) * cumulative[-1]
            candidates = np.searchsorted(cumulative, draws, side="right")
            # a draw rounding up to the total would fall off the end: take the last mass
            candidates = np.minimum(candidates, np.flatnonzero(closest > 0)[-1])
            d2 = embedding.sq_distances(candidates, sq_norms)
            if n_local_trials == 1:
                best = 0
            else:
                best = int(np.argmin(np.minimum(closest[:, None], d2).sum(axis=0)))
            center, d2_center = int(candidates[best]), d2[:, best]
        picks[step], picked_d2[step] = center, closest[center]
        chosen[center] = True
        np.minimum(closest, d2_center, out=closest)
        closest[center] = 0.0  # rounding may leave a tiny distance to itself
    return picks, picked_d2
