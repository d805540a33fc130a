"""k-means: cluster the unlabeled embeddings into ``budget`` groups, label the sample nearest
each centre (clustering-based representativeness, survey §3.2.1).

Model-free given embeddings, so it also serves as a cold-start initial strategy on
self-supervised features (``--initial-strategy kmeans``). Labeled samples are not clustered
(unlike TypiClust, which favours clusters without labels). See
:func:`medactive.selection.kmeans_select.kmeans_select`.

References:
    Zhdanov, "Diverse mini-batch active learning", arXiv:1901.05954, 2019; Sculley,
    "Web-scale k-means clustering", WWW 2010.
"""

from __future__ import annotations

import numpy as np

from medactive.errors import ConfigError
from medactive.predictions import Predictions
from medactive.selection import clustering
from medactive.selection.kmeans_select import kmeans_select
from medactive.strategies.base import QueryResult, Strategy, register_strategy


@register_strategy
class KMeans(Strategy):
    """One sample per k-means cluster (``k = budget``) of ``"embeddings"`` ``[n, d]``.

    Args:
        kmeans_backend: ``"sklearn"`` (MiniBatchKMeans, k-means++ init) or ``"faiss"``.
        n_init: k-means restarts, the lowest inertia kept.

    The query's scores are each pick's cluster size (how many unlabeled samples it stands
    for), largest first.

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> emb = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
        >>> r = KMeans().query(ArrayPredictions(embeddings=emb), np.arange(6),
        ...                    np.array([], int), 2, rng=0)
        >>> sorted(r.indices.tolist())
        [1, 4]
    """

    name = "kmeans"
    description = ("k-means with k = budget on the unlabeled embeddings; the sample nearest each "
                   "centre (model-free, cold-start capable).")
    requires = ("embeddings",)

    def __init__(self, kmeans_backend: str = "sklearn", n_init: int = 1) -> None:
        if kmeans_backend not in clustering.BACKENDS:
            raise ConfigError(f"kmeans: kmeans_backend must be one of {clustering.BACKENDS}, "
                              f"got {kmeans_backend!r}")
        if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
            raise ConfigError(f"kmeans: n_init must be an integer >= 1, got {n_init!r}")
        self.kmeans_backend = kmeans_backend
        self.n_init = int(n_init)

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        X = predictions.get("embeddings", unlabeled_idx)
        positions, sizes = kmeans_select(X, budget, rng=rng, backend=self.kmeans_backend,
                                         n_init=self.n_init)
        return QueryResult(unlabeled_idx[positions], sizes)

    def __repr__(self) -> str:
        return f"KMeans(kmeans_backend={self.kmeans_backend!r}, n_init={self.n_init})"
