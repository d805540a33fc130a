"""Core-Set: k-center greedy on penultimate embeddings, starting from the labeled set.

Each pick is the unlabeled sample farthest from every labeled or already picked sample, which
greedily minimises the radius of the balls covering the pool (a 2-approximation of k-center).
Two registered variants differ in the metric: ``coreset_l2`` (Euclidean, as in the paper) and
``coreset_cosine`` (``1 - cos``, the survey benchmark's variant). No ``n × n`` distance matrix
is built: see :func:`medactive.selection.kcenter.k_center_greedy`.

References:
    Sener and Savarese, "Active learning for convolutional neural networks: a core-set
    approach", ICLR 2018.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from medactive.errors import ConfigError
from medactive.predictions import FieldRows, Predictions
from medactive.selection.embedding import EMBEDDING_DTYPES, HalfMatrix, resolve_dtype
from medactive.selection.kcenter import k_center_greedy
from medactive.strategies.base import QueryResult, Strategy, register_strategy


class _CoreSet(Strategy):
    """k-center greedy on ``"embeddings"`` ``[n, d]``.

    Args:
        projection_dim: run on a Gaussian random projection to this many dimensions
            (faster on wide embeddings and huge pools; ``None`` = exact).
        embedding_dtype: storage of the unlabeled embeddings during selection,
            ``"float32"``, ``"float16"``, ``"bfloat16"`` (16 bits: half the bytes per pass,
            products accumulated in float32) or ``"auto"`` (float32 below 250,000 unlabeled
            samples, bfloat16 from there on). The labeled set stays float32.

    The query's scores are each pick's distance to its nearest centre when it was chosen.
    """

    metric: ClassVar[str] = "l2"
    requires = ("embeddings",)

    def __init__(self, projection_dim: int | None = None, embedding_dtype: str = "auto") -> None:
        if projection_dim is not None and (isinstance(projection_dim, bool) or not isinstance(
                projection_dim, (int, np.integer)) or projection_dim < 1):
            raise ConfigError(f"{self.name}: projection_dim must be a positive integer or None, "
                              f"got {projection_dim!r}")
        if embedding_dtype not in EMBEDDING_DTYPES:
            raise ConfigError(f"{self.name}: embedding_dtype must be one of "
                              f"{', '.join(EMBEDDING_DTYPES)}, got {embedding_dtype!r}")
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.embedding_dtype = embedding_dtype

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        dtype = resolve_dtype(self.embedding_dtype, unlabeled_idx.size)
        if predictions.array_device is not None:  # --selection-device: float32 there
            X = predictions.to_selection(np.asarray(
                predictions.get("embeddings", unlabeled_idx), dtype=np.float32))
            X_labeled = (predictions.to_selection(np.asarray(
                predictions.get("embeddings", labeled_idx), dtype=np.float32))
                if labeled_idx.size else None)
            positions, dists = k_center_greedy(X, budget, X_labeled=X_labeled,
                                               metric=self.metric, rng=rng,
                                               projection_dim=self.projection_dim)
            return QueryResult(unlabeled_idx[positions], dists)
        if dtype == "float32":
            X = predictions.get("embeddings", unlabeled_idx)
        else:  # rounded block by block: no float32 copy of the unlabeled embeddings
            X = HalfMatrix.encode(FieldRows(predictions, "embeddings", unlabeled_idx), dtype)
        X_labeled = predictions.get("embeddings", labeled_idx) if labeled_idx.size else None
        positions, dists = k_center_greedy(X, budget, X_labeled=X_labeled, metric=self.metric,
                                           rng=rng, projection_dim=self.projection_dim)
        return QueryResult(unlabeled_idx[positions], dists)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(projection_dim={self.projection_dim}, "
                f"embedding_dtype={self.embedding_dtype!r})")


@register_strategy
class CoreSetL2(_CoreSet):
    name = "coreset_l2"
    description = "Core-Set: k-center greedy on penultimate embeddings, Euclidean distance."
    metric = "l2"


@register_strategy
class CoreSetCosine(_CoreSet):
    name = "coreset_cosine"
    description = "Core-Set: k-center greedy on penultimate embeddings, cosine distance."
    metric = "cosine"
