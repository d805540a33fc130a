"""Sampling as pure functions of scores and/or embeddings (survey §3.3).

Each function takes an explicit ``rng`` and returns positions into its inputs; strategies map
them to pool-absolute indices.
"""

from __future__ import annotations

from medactive.selection.clustering import kmeans, representatives
from medactive.selection.embedding import DenseEmbedding, Embedding, FactorisedEmbedding
from medactive.selection.kcenter import k_center_greedy
from medactive.selection.kmeanspp import kmeans_plusplus
from medactive.selection.neighbors import knn_graph, typicality
from medactive.selection.topk import random_subset, top_k
from medactive.selection.typiclust import typiclust

__all__ = ["DenseEmbedding", "Embedding", "FactorisedEmbedding", "k_center_greedy", "kmeans",
           "kmeans_plusplus", "knn_graph", "random_subset", "representatives", "top_k",
           "typicality", "typiclust"]
