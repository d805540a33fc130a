"""The kNN strategies' ``embedding_dtype`` option (issue 16) and TypiClust's block-wise fetch:
float16 picks equal float32 ones on well-separated fixtures; ``"auto"`` is float32 on small
pools; bad values are one ConfigError line."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions
from medactive.selection import neighbors
from medactive.strategies import _embeddings, create_strategy

KNN = ("typiclust", "probcover", "max_cover", "facility_location")


def _pool(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(4, 8))
    return np.concatenate([c + rng.normal(size=(30, 8)) for c in centres]).astype(np.float32)


@pytest.mark.parametrize("name", KNN)
def test_float16_picks_equal_float32_ones(name):
    preds = ArrayPredictions(embeddings=_pool())
    unl, lab = np.arange(4, 120), np.arange(4)
    options = {"delta": 0.3} if name == "probcover" else {}
    ref = create_strategy(name, embedding_dtype="float32", **options).query(
        preds, unl, lab, 6, rng=0)
    half = create_strategy(name, embedding_dtype="float16", **options).query(
        preds, unl, lab, 6, rng=0)
    np.testing.assert_array_equal(half.indices, ref.indices)
    np.testing.assert_allclose(half.scores, ref.scores, rtol=2e-2)


@pytest.mark.parametrize("name", KNN)
def test_auto_is_float32_below_the_threshold_and_float16_above(name, monkeypatch):
    seen = []
    real = _embeddings.stacked_embeddings

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(_embeddings, "stacked_embeddings", spy)
    preds = ArrayPredictions(embeddings=_pool())
    s = create_strategy(name)
    assert s.embedding_dtype == "auto"
    s.query(preds, np.arange(4, 120), np.arange(4), 3, rng=0)
    monkeypatch.setattr(neighbors, "HALF_PRECISION_FROM", 100)
    s.query(preds, np.arange(4, 120), np.arange(4), 3, rng=0)
    assert seen == [np.float32, np.float16]


@pytest.mark.parametrize("name", KNN)
def test_bad_embedding_dtype_is_one_config_error(name):
    with pytest.raises(ConfigError, match=f"{name}: embedding_dtype must be one of"):
        create_strategy(name, embedding_dtype="int8")


def test_typiclust_fetches_in_blocks_into_one_array(monkeypatch):
    # issue 16: 10^6 rows were copied out whole (Predictions.get) and concatenated again with
    # the labeled ones: two [n, d] arrays beside the inputs (4.2 GB added)
    sizes = []

    class Recording(ArrayPredictions):
        def get(self, field, idx):
            sizes.append(np.asarray(idx).size)
            return super().get(field, idx)

    monkeypatch.setattr(_embeddings, "BLOCK", 16)
    preds = Recording(embeddings=_pool())
    r = create_strategy("typiclust").query(preds, np.arange(4, 120), np.arange(4), 3, rng=0)
    assert max(sizes) <= 16 and np.unique(r.indices).size == 3


def test_float16_range(monkeypatch):
    big = _pool() * 1e4  # values beyond 65504: "auto" stays float32, "float16" refuses
    preds = ArrayPredictions(embeddings=big)
    monkeypatch.setattr(neighbors, "HALF_PRECISION_FROM", 10)
    out = _embeddings.stacked_embeddings(preds, np.arange(100), np.arange(100, 120),
                                         embedding_dtype="auto")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, big)
    with pytest.raises(ConfigError, match="float16's range"):
        create_strategy("typiclust", embedding_dtype="float16").query(
            preds, np.arange(100), np.arange(100, 120), 3, rng=0)
