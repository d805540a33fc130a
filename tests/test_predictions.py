from __future__ import annotations

import numpy as np
import pytest

from medactive.predictions import ArrayPredictions, CachedPredictions
from medactive.scoring import entropy, mc_entropy


def _probas(n, c=3, seed=0):
    logits = np.random.default_rng(seed).normal(size=(n, c))
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_array_get_and_errors():
    p = ArrayPredictions(probas=np.array([[0.9, 0.1], [0.5, 0.5]]))
    assert p.get("probas", np.array([1, 0])).tolist() == [[0.5, 0.5], [0.9, 0.1]]
    with pytest.raises(KeyError, match="unknown"):
        p.get("logits", np.array([0]))
    with pytest.raises(ValueError, match="no 'embeddings'"):
        p.get("embeddings", np.array([0]))
    assert ArrayPredictions(mc_probas=np.full((2, 2, 7), 0.5)).n_mc_samples == 7


def test_score_streams_in_blocks_and_averages_pixels():
    probas = _probas(100)
    preds = ArrayPredictions(probas=probas)
    preds.score_block_bytes = 48  # two rows of 3 float64 per block
    calls = []

    def fn(x):
        calls.append(len(x))
        return entropy(x)

    np.testing.assert_allclose(preds.score(fn, "probas", np.arange(100)), entropy(probas))
    assert calls[0] == 16 and max(calls[1:]) == 2
    seg = np.stack([probas[:4], probas[4:8]], axis=-1)[..., None]  # [4, 3, 2, 1] "pixels"
    seg_scores = ArrayPredictions(probas=seg).score(entropy, "probas", np.arange(4))
    np.testing.assert_allclose(seg_scores, (entropy(probas[:4]) + entropy(probas[4:8])) / 2)


def test_cached_computes_each_row_once_in_chunks():
    probas = _probas(30)
    calls = []

    def provider(idx):
        calls.append(idx.copy())
        return probas[idx]

    preds = CachedPredictions(30, {"probas": provider}, chunk_size=4)
    np.testing.assert_allclose(preds.get("probas", np.array([5, 3, 9])), probas[[5, 3, 9]])
    np.testing.assert_allclose(preds.get("probas", np.arange(10)), probas[:10])
    assert max(len(c) for c in calls) <= 4
    assert sorted(np.concatenate(calls).tolist()) == list(range(10))  # no row twice


def test_cached_memmap_float16(tmp_path):
    probas = _probas(50, c=4).astype(np.float32)
    mc = np.stack([probas, probas[::-1]], axis=-1)
    emb = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    preds = CachedPredictions(50, {"probas": lambda i: probas[i], "mc_probas": lambda i: mc[i],
                                   "embeddings": lambda i: emb[i]},
                              cache_dir=tmp_path / "round0", dtype="float16", chunk_size=16)
    got = preds.get("probas", np.arange(50))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)  # renormalised
    np.testing.assert_allclose(got, probas, atol=2e-3)
    np.testing.assert_allclose(preds.get("embeddings", np.arange(50)), emb, rtol=1e-3, atol=1e-3)
    stored = np.load(tmp_path / "round0" / "probas.npy", mmap_mode="r")
    assert stored.dtype == np.float16 and stored.shape == (50, 4)
    np.testing.assert_allclose(preds.score(mc_entropy, "mc_probas", np.arange(50)),
                               mc_entropy(mc), atol=5e-3)


def test_cached_gradient_embedding_and_bad_provider():
    probas, h = _probas(6), np.ones((6, 2))
    preds = CachedPredictions(6, {"probas": lambda i: probas[i], "embeddings": lambda i: h[i]})
    emb = preds.gradient_embedding(np.array([0, 4]))
    expected = probas[[0, 4]].copy()
    expected[np.arange(2), expected.argmax(axis=1)] -= 1
    np.testing.assert_allclose(emb.a, expected)
    bad = CachedPredictions(6, {"probas": lambda i: probas[:1]})
    with pytest.raises(ValueError, match="returned 1 rows"):
        bad.get("probas", np.array([0, 1]))
    with pytest.raises(KeyError, match="no provider"):
        bad.get("mc_probas", np.array([0]))
