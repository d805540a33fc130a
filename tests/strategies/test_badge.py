from __future__ import annotations

import numpy as np

from medactive.predictions import ArrayPredictions
from medactive.selection.embedding import DenseEmbedding
from medactive.selection.kmeanspp import kmeans_plusplus
from medactive.strategies import create_strategy


def _predictions(n=50, c=4, d=8, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 2
    probas = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return ArrayPredictions(probas=probas, embeddings=rng.normal(size=(n, d)))


def test_badge_equals_kmeanspp_on_materialised_gradients():
    preds = _predictions()
    unlabeled = np.arange(3, 50)
    result = create_strategy("badge").query(preds, unlabeled, np.arange(3), 10, rng=11)
    p, h = preds.get("probas", unlabeled), preds.get("embeddings", unlabeled)
    onehot = np.eye(4)[p.argmax(axis=1)]
    grads = ((p - onehot)[:, :, None] * h[:, None, :]).reshape(len(unlabeled), -1)
    positions, _ = kmeans_plusplus(DenseEmbedding(grads), 10, rng=11, first="max_norm")
    assert result.indices.tolist() == unlabeled[positions].tolist()
    # first pick: the largest gradient norm, scored by its squared norm
    norms = (grads ** 2).sum(axis=1)
    assert result.indices[0] == unlabeled[np.argmax(norms)]
    assert np.isclose(result.scores[0], norms.max())


def test_badge_avoids_confident_samples():
    # confident samples have near-zero gradients, all at the origin: once one of them is a
    # seed the others are at distance ~0, so at most one is picked (and never first)
    preds = _predictions(n=40)
    probas = preds._fields["probas"]
    probas[:20] = np.eye(4)[np.arange(20) % 4] * (1 - 3e-6) + 1e-6
    result = create_strategy("badge").query(preds, np.arange(40), np.array([], int), 5, rng=0)
    assert result.indices[0] >= 20
    assert sum(i < 20 for i in result.indices) <= 1
