from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from medactive.predictions import ArrayPredictions
from medactive.strategies import create_strategy


@pytest.mark.parametrize("name,metric", [("coreset_l2", "euclidean"),
                                         ("coreset_cosine", "cosine")])
def test_coreset_equals_dense_matrix_version(name, metric):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(60, 4))
    labeled = np.array([1, 8, 30])
    unlabeled = np.setdiff1d(np.arange(60), labeled)
    result = create_strategy(name).query(ArrayPredictions(embeddings=emb), unlabeled, labeled,
                                         6, rng=0)
    D = cdist(emb, emb, metric=metric)  # the n x n matrix our implementation avoids
    centres, picks = list(labeled), []
    for _ in range(6):
        min_d = D[np.ix_(unlabeled, centres)].min(axis=1)
        min_d[np.isin(unlabeled, picks)] = -1
        picks.append(int(unlabeled[np.argmax(min_d)]))
        centres.append(picks[-1])
    assert result.indices.tolist() == picks


def test_coreset_covers_far_cluster_first():
    emb = np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [50.0, 50.0], [50.1, 50.0]])
    result = create_strategy("coreset_l2").query(ArrayPredictions(embeddings=emb),
                                                 np.arange(1, 5), np.array([0]), 2, rng=0)
    assert result.indices[0] in (3, 4) and result.indices[1] == 2
