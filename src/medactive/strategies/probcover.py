"""ProbCover: greedy maximum coverage of δ-balls on embeddings, δ chosen by ball purity
(cover-based representativeness, survey §3.2.2; for low budgets).

Each pick is the unlabeled sample whose δ-ball holds the most points (labeled or unlabeled)
not yet covered by a labeled or picked sample's ball. δ is the largest radius at which at
least ``alpha`` (0.95) of the balls are pure with respect to k-means pseudo-labels with
``n_clusters`` clusters; the paper uses the number of classes, which a strategy does not see,
so set ``n_clusters`` to it (default 10). The ball graph keeps at most ``max_neighbors``
(default 50) neighbours per point, so memory is ``O(n · max_neighbors)``. Model-free given
embeddings: also a cold-start initial strategy (``--initial-strategy probcover``), the
setting of the paper. See :mod:`medactive.selection.probcover` for the exact rules and the
differences from the authors' code.

References:
    Yehuda, Dekel, Hacohen and Weinshall, "Active learning through a covering lens",
    NeurIPS 2022.
"""

from __future__ import annotations

import math

import numpy as np

from medactive.errors import ConfigError
from medactive.predictions import Predictions
from medactive.selection import clustering
from medactive.selection.probcover import ALPHA, MAX_NEIGHBORS, N_CLUSTERS, probcover_stacked
from medactive.strategies import _embeddings
from medactive.strategies._options import (
    check_embedding_dtype,
    check_knn_backend,
    check_positive_int,
)
from medactive.strategies.base import QueryResult, Strategy, register_strategy


@register_strategy
class ProbCover(Strategy):
    """Greedy δ-ball coverage on ``"embeddings"`` ``[n, d]`` (L2-normalised first).

    Args:
        delta: ball radius on the unit-normalised embeddings; ``None`` = chosen by purity.
        alpha: purity threshold for δ, in ``(0, 1]`` (paper: 0.95).
        n_clusters: k-means pseudo-label clusters for the purity (paper: the number of
            classes; default 10).
        max_neighbors: neighbours kept per node of the ball graph (default 50).
        kmeans_backend: ``"sklearn"`` or ``"faiss"``.
        knn_backend: ``"faiss"`` or ``"pynndescent"``.
        embedding_dtype: storage of the unit embeddings, ``"auto"`` (float16 from 250,000
            rows), ``"float32"`` or ``"float16"`` (half the memory of the array and of the
            kNN index; distances computed in float32).

    The query's scores are the number of points each pick newly covered (0 for picks made
    at random once everything is covered).

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> emb = np.array([[1.0, 0.0], [1.0, 0.05], [1.0, -0.05], [0.0, 1.0], [0.05, 1.0]])
        >>> r = ProbCover(delta=0.2).query(ArrayPredictions(embeddings=emb), np.arange(5),
        ...                                np.array([], int), 2, rng=0)
        >>> r.indices.tolist(), r.scores.tolist()
        ([0, 3], [3.0, 2.0])
    """

    name = "probcover"
    description = ("ProbCover: greedy max coverage of delta-balls on embeddings, delta by "
                   "k-means ball purity (model-free, low budgets, cold-start capable).")
    requires = ("embeddings",)

    def __init__(self, delta: float | None = None, alpha: float = ALPHA,
                 n_clusters: int = N_CLUSTERS, max_neighbors: int = MAX_NEIGHBORS,
                 kmeans_backend: str = "sklearn", knn_backend: str = "faiss",
                 embedding_dtype: str = "auto") -> None:
        if delta is not None and (isinstance(delta, bool) or not isinstance(
                delta, (int, float, np.number)) or not math.isfinite(delta) or delta <= 0):
            raise ConfigError(f"probcover: delta must be a positive number or None, "
                              f"got {delta!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) \
                or not 0 < alpha <= 1:
            raise ConfigError(f"probcover: alpha must be in (0, 1], got {alpha!r}")
        if kmeans_backend not in clustering.BACKENDS:
            raise ConfigError(f"probcover: kmeans_backend must be one of "
                              f"{clustering.BACKENDS}, got {kmeans_backend!r}")
        self.delta = None if delta is None else float(delta)
        self.alpha = float(alpha)
        self.n_clusters = check_positive_int(self.name, "n_clusters", n_clusters)
        self.max_neighbors = check_positive_int(self.name, "max_neighbors", max_neighbors)
        self.kmeans_backend = kmeans_backend
        self.knn_backend = check_knn_backend(self.name, knn_backend)
        self.embedding_dtype = check_embedding_dtype(self.name, embedding_dtype)

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        X_all = _embeddings.stacked_embeddings(predictions, unlabeled_idx, labeled_idx,
                                               embedding_dtype=self.embedding_dtype,
                                               normalise=True)
        positions, gains = probcover_stacked(
            X_all, unlabeled_idx.size, budget, rng=rng, delta=self.delta, alpha=self.alpha,
            n_clusters=self.n_clusters, max_neighbors=self.max_neighbors,
            kmeans_backend=self.kmeans_backend, knn_backend=self.knn_backend)
        return QueryResult(unlabeled_idx[positions], gains)

    def __repr__(self) -> str:
        return (f"ProbCover(delta={self.delta}, alpha={self.alpha}, n_clusters="
                f"{self.n_clusters}, max_neighbors={self.max_neighbors}, kmeans_backend="
                f"{self.kmeans_backend!r}, knn_backend={self.knn_backend!r}, "
                f"embedding_dtype={self.embedding_dtype!r})")
