from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.predictions import ArrayPredictions
from medactive.selection.embedding import DenseEmbedding, FactorisedEmbedding


def _autograd_gradients(h: np.ndarray, n_classes: int, seed: int = 0):
    """Per-sample grads of CE at the predicted label w.r.t. nn.Linear.weight, and softmax."""
    torch.manual_seed(seed)
    layer = torch.nn.Linear(h.shape[1], n_classes).double()
    grads, probas = [], []
    for row in torch.from_numpy(h):
        layer.zero_grad()
        logits = layer(row[None])
        y_hat = logits.argmax(dim=1)
        torch.nn.functional.cross_entropy(logits, y_hat).backward()
        grads.append(layer.weight.grad.detach().numpy().ravel().copy())
        probas.append(torch.softmax(logits, dim=1).detach().numpy()[0])
    return np.array(grads), np.array(probas)


def test_badge_factorisation_equals_autograd():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(7, 5))
    grads, probas = _autograd_gradients(h, n_classes=3)
    emb = ArrayPredictions(probas=probas, embeddings=h).gradient_embedding(np.arange(7))
    assert isinstance(emb, FactorisedEmbedding)
    np.testing.assert_allclose(emb.to_dense(), grads, atol=1e-12)  # same layout, [c, d] flat
    np.testing.assert_allclose(emb.sq_norms(), (grads ** 2).sum(axis=1), rtol=1e-10)
    np.testing.assert_allclose(emb.dot(np.arange(7)), grads @ grads.T, atol=1e-12)
    d2 = ((grads[:, None, :] - grads[None, :, :]) ** 2).sum(axis=-1)
    np.testing.assert_allclose(emb.sq_distances(np.array([2, 5])), d2[:, [2, 5]], atol=1e-10)


def test_dense_embedding_by_hand():
    emb = DenseEmbedding(np.array([[3.0, 4.0], [0.0, 1.0]]))
    np.testing.assert_allclose(emb.sq_norms(), [25.0, 1.0])
    np.testing.assert_allclose(emb.sq_distances(np.array([1])), [[18.0], [0.0]])
    assert emb.take(np.array([1])).to_dense().tolist() == [[0.0, 1.0]]


def test_factorised_take_and_float32_kept():
    a = np.array([[1.0, -1.0], [0.5, 0.0], [0.0, 2.0]])
    h = np.arange(9, dtype=np.float32).reshape(3, 3)
    emb = FactorisedEmbedding(a, h)
    assert emb.h.dtype == np.float32 and emb.dim == 6
    np.testing.assert_allclose(emb.take(np.array([2, 0])).to_dense(), emb.to_dense()[[2, 0]])


def test_bad_factors():
    with pytest.raises(ValueError, match="same n"):
        FactorisedEmbedding(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        FactorisedEmbedding(np.ones((2, 2)), np.array([[1.0], [np.nan]]))
