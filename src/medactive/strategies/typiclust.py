"""TypiClust: the most typical unlabeled point of each uncovered cluster (low-budget regime).

With few labels, the examples most worth labelling are the typical ones, not the uncertain
ones: the pool (labeled and unlabeled) is clustered into ``|L| + B`` groups on penultimate
embeddings, and each pick is the densest unlabeled point (typicality = inverse mean distance to
its ``k`` nearest neighbours in the cluster) of the cluster with the fewest labeled points.
This is the density/typicality branch of the survey's representativeness taxonomy (§3); it is
beyond the survey's benchmark list. The paper embeds with self-supervised features; here the
embeddings are the task model's, as for Core-Set (segmentation: the pooled bottleneck
features). See :func:`medactive.selection.typiclust.typiclust`, whose docstring lists
precisely where the neighbour rule (``k``, eligible clusters, distances, cluster order)
differs from the authors' code.

References:
    Hacohen, Dekel and Weinshall, "Active learning on a budget: opposite strategies suit high
    and low budgets", ICML 2022.
"""

from __future__ import annotations

import numpy as np

from medactive.predictions import Predictions
from medactive.selection.typiclust import check_options, typiclust
from medactive.strategies.base import QueryResult, Strategy, register_strategy


@register_strategy
class TypiClust(Strategy):
    """Cluster-covering selection by typicality on ``"embeddings"`` ``[n, d]``.

    Args:
        kmeans_backend: ``"sklearn"`` (MiniBatchKMeans) or ``"faiss"``.
        n_neighbors: ``k`` of the typicality (paper: 20), capped at the cluster size - 1.
        min_cluster_size: smaller clusters are never chosen (default 5; the authors' code
            keeps clusters of more than 5 points, i.e. 6 here).
        max_clusters: cap on the number of clusters ``|L| + B`` (paper: 500); ``None`` = no
            cap.
        knn_backend: ``"faiss"`` (exact, HNSW on huge clusters) or ``"pynndescent"``.

    The query's scores are each pick's typicality when it was chosen.

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> emb = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
        >>> s = TypiClust(min_cluster_size=3)
        >>> r = s.query(ArrayPredictions(embeddings=emb), np.arange(6), np.array([], int), 2,
        ...             rng=0)
        >>> sorted(r.indices.tolist())
        [1, 4]
    """

    name = "typiclust"
    description = ("TypiClust: most typical (dense) unlabeled point of the least-labeled k-means "
                   "cluster of penultimate embeddings; for low budgets.")
    requires = ("embeddings",)

    def __init__(self, kmeans_backend: str = "sklearn", n_neighbors: int = 20,
                 min_cluster_size: int = 5, max_clusters: int | None = 500,
                 knn_backend: str = "faiss") -> None:
        check_options(n_neighbors=n_neighbors, min_cluster_size=min_cluster_size,
                      max_clusters=max_clusters, kmeans_backend=kmeans_backend,
                      knn_backend=knn_backend)
        self.kmeans_backend = kmeans_backend
        self.n_neighbors = int(n_neighbors)
        self.min_cluster_size = int(min_cluster_size)
        self.max_clusters = None if max_clusters is None else int(max_clusters)
        self.knn_backend = knn_backend

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        X = predictions.get("embeddings", unlabeled_idx)
        X_labeled = predictions.get("embeddings", labeled_idx) if labeled_idx.size else None
        positions, scores = typiclust(X, budget, X_labeled=X_labeled, rng=rng,
                                      n_neighbors=self.n_neighbors,
                                      min_cluster_size=self.min_cluster_size,
                                      max_clusters=self.max_clusters,
                                      kmeans_backend=self.kmeans_backend,
                                      knn_backend=self.knn_backend)
        return QueryResult(unlabeled_idx[positions], scores)

    def __repr__(self) -> str:
        return (f"TypiClust(kmeans_backend={self.kmeans_backend!r}, n_neighbors="
                f"{self.n_neighbors}, min_cluster_size={self.min_cluster_size}, max_clusters="
                f"{self.max_clusters}, knn_backend={self.knn_backend!r})")
