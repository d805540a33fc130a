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
from medactive.selection.typiclust import check_options, typiclust_stacked
from medactive.strategies import _embeddings
from medactive.strategies._options import check_embedding_dtype
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
        typicality_candidates: clusters with more members score only this many at a time,
            those nearest the cluster's mean (default 256; ``None`` = every member).
        kmeans_samples_per_cluster: k-means is fitted on at most this many points per
            cluster, then every point is assigned (default 256; ``None`` = all points).
        embedding_dtype: storage of the stacked embeddings, ``"auto"`` (float16 from 250,000
            rows), ``"float32"`` or ``"float16"``.

    See :mod:`medactive.selection.typiclust` for what the scale options approximate (small
    pools are unaffected).

    The query's scores are each pick's typicality when it was chosen.

    On a selection device (:attr:`~medactive.predictions.Predictions.array_device`, e.g.
    CUDA) the stacked embeddings are moved there in float32 (``embedding_dtype`` is the host's
    storage only) and the kNN / typicality run there; k-means stays on the host.

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
                 knn_backend: str = "faiss", typicality_candidates: int | None = 256,
                 kmeans_samples_per_cluster: int | None = 256,
                 embedding_dtype: str = "auto") -> None:
        check_options(n_neighbors=n_neighbors, min_cluster_size=min_cluster_size,
                      max_clusters=max_clusters, kmeans_backend=kmeans_backend,
                      knn_backend=knn_backend, typicality_candidates=typicality_candidates,
                      kmeans_samples_per_cluster=kmeans_samples_per_cluster)
        self.typicality_candidates = None if typicality_candidates is None else int(
            typicality_candidates)
        self.kmeans_samples_per_cluster = None if kmeans_samples_per_cluster is None else int(
            kmeans_samples_per_cluster)
        self.embedding_dtype = check_embedding_dtype(self.name, embedding_dtype)
        self.kmeans_backend = kmeans_backend
        self.n_neighbors = int(n_neighbors)
        self.min_cluster_size = int(min_cluster_size)
        self.max_clusters = None if max_clusters is None else int(max_clusters)
        self.knn_backend = knn_backend

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        # one [n, d] array filled block by block (issue 16: the unlabeled rows were copied
        # out whole, then concatenated again with the labeled ones)
        X_all = _embeddings.stacked_embeddings(
            predictions, unlabeled_idx, labeled_idx,
            embedding_dtype="float32" if predictions.array_device is not None
            else self.embedding_dtype)
        if predictions.array_device is not None:  # --selection-device: kNN there, float32
            X_all = predictions.to_selection(X_all)
        positions, scores = typiclust_stacked(
            X_all, unlabeled_idx.size, budget, rng=rng, n_neighbors=self.n_neighbors,
            min_cluster_size=self.min_cluster_size, max_clusters=self.max_clusters,
            kmeans_backend=self.kmeans_backend, knn_backend=self.knn_backend,
            typicality_candidates=self.typicality_candidates,
            kmeans_samples_per_cluster=self.kmeans_samples_per_cluster)
        return QueryResult(unlabeled_idx[positions], scores)

    def __repr__(self) -> str:
        return (f"TypiClust(kmeans_backend={self.kmeans_backend!r}, n_neighbors="
                f"{self.n_neighbors}, min_cluster_size={self.min_cluster_size}, max_clusters="
                f"{self.max_clusters}, knn_backend={self.knn_backend!r}, "
                f"typicality_candidates={self.typicality_candidates}, "
                f"kmeans_samples_per_cluster={self.kmeans_samples_per_cluster}, "
                f"embedding_dtype={self.embedding_dtype!r})")
