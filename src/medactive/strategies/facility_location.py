"""Facility location: greedy maximisation of Σ_x max_{q ∈ Q ∪ L} sim(q, x) over the pool.

The submodular facility-location function on a sparse kNN cosine similarity of the
embeddings (cover-based representativeness, survey §3.2.2), maximised with Minoux's lazy
greedy (a priority queue of stale gains). The labeled set ``L`` counts as already chosen, so
each pick adds the most similarity mass not yet represented. Memory is ``O(n k)``: see
:mod:`medactive.selection.facility_location`. Model-free given embeddings, so it also works
as a cold-start initial strategy.

Same objective as ``max_cover`` (suggestive annotation's max-cover): without ``max_cover``'s
uncertainty pre-filter the two return the same selection (tested); this one exists under the
submodular-optimisation name, with the universe being the whole pool (labeled points are
covered by themselves, so they add nothing).

References:
    Minoux, "Accelerated greedy algorithms for maximizing submodular set functions", 1978;
    Wei, Iyer and Bilmes, "Submodularity in data subset selection and active learning",
    ICML 2015; Nemhauser, Wolsey and Fisher, "An analysis of approximations for maximizing
    submodular set functions", Math. Programming 1978 (the greedy's 1 - 1/e bound).
"""

from __future__ import annotations

import numpy as np

from medactive.predictions import Predictions
from medactive.selection.facility_location import (
    N_NEIGHBORS,
    facility_location_greedy,
    knn_similarity,
)
from medactive.strategies import _embeddings
from medactive.strategies._options import (
    check_embedding_dtype,
    check_knn_backend,
    check_positive_int,
)
from medactive.strategies.base import QueryResult, Strategy, register_strategy


class _CoverStrategy(Strategy):
    """Facility-location greedy on ``"embeddings"`` ``[n, d]`` of unlabeled ∪ labeled.

    Args:
        n_neighbors: ``k`` of the sparse similarity graph (default 20): each point keeps its
            ``k`` nearest neighbours by cosine, symmetrised, ``max(0, cos)`` as similarity.
        knn_backend: ``"faiss"`` (exact, HNSW above 5·10^4 points) or ``"pynndescent"``.
        embedding_dtype: storage of the unit embeddings, ``"auto"`` (float16 from 250,000
            rows), ``"float32"`` or ``"float16"`` (half the memory of the array and of the
            kNN index; distances computed in float32).

    The query's scores are each pick's gain in the objective when it was chosen.
    """

    requires = ("embeddings",)
    #: cover only the unlabeled points (suggestive annotation's S_u) or the whole pool
    universe: str = "pool"

    def __init__(self, n_neighbors: int = N_NEIGHBORS, knn_backend: str = "faiss",
                 embedding_dtype: str = "auto") -> None:
        self.n_neighbors = check_positive_int(self.name, "n_neighbors", n_neighbors)
        self.knn_backend = check_knn_backend(self.name, knn_backend)
        self.embedding_dtype = check_embedding_dtype(self.name, embedding_dtype)

    def _candidates(self, predictions: Predictions, unlabeled_idx: np.ndarray,
                    budget: int) -> np.ndarray:
        return np.arange(unlabeled_idx.size)

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        n_u = unlabeled_idx.size
        X = _embeddings.stacked_embeddings(predictions, unlabeled_idx, labeled_idx,
                                           embedding_dtype=self.embedding_dtype, normalise=True)
        S = knn_similarity(X, self.n_neighbors, backend=self.knn_backend, rng=rng, copy=False,
                           normalised=X.dtype == np.float16)  # float32: as before
        n = X.shape[0]
        del X  # the graph is all the greedy needs
        weights = np.ones(n)
        if self.universe == "unlabeled":
            weights[n_u:] = 0.0
        positions, gains = facility_location_greedy(
            S, budget, candidates=self._candidates(predictions, unlabeled_idx, budget),
            chosen=np.arange(n_u, n), weights=weights)
        return QueryResult(unlabeled_idx[positions], gains)


@register_strategy
class FacilityLocation(_CoverStrategy):
    """Facility location, lazy greedy, on a sparse kNN cosine similarity of the embeddings.

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> r = FacilityLocation(n_neighbors=1).query(ArrayPredictions(embeddings=emb),
        ...                                           np.arange(4), np.array([], int), 2)
        >>> sorted(r.indices.tolist()) in ([0, 2], [0, 3], [1, 2], [1, 3])
        True
    """

    name = "facility_location"
    description = ("Facility location: lazy-greedy max of summed best cosine similarity to the "
                   "chosen set, on a sparse kNN graph of embeddings (model-free).")
    universe = "pool"

    def __repr__(self) -> str:
        return (f"FacilityLocation(n_neighbors={self.n_neighbors}, "
                f"knn_backend={self.knn_backend!r}, embedding_dtype={self.embedding_dtype!r})")
