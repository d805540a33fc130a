"""BADGE and Core-Set options for very large pools (issue 16): 16-bit embeddings, lazy
pool updates and k-means‖ seeding, as strategy options (bench grids, run.json)."""

from __future__ import annotations

import numpy as np
import pytest

import medactive.strategies.badge as badge_module
from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions
from medactive.selection.embedding import FactorisedEmbedding, HalfMatrix
from medactive.strategies import create_strategy
from medactive.strategies.badge import gradient_embedding


def _predictions(n=120, c=4, d=8, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 2
    probas = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return ArrayPredictions(probas=probas.astype(np.float32),
                            embeddings=rng.normal(size=(n, d)).astype(np.float32))


def test_auto_keeps_todays_picks_on_small_pools():
    preds, unl, lab = _predictions(), np.arange(5, 120), np.arange(5)
    default = create_strategy("badge").query(preds, unl, lab, 12, rng=3)
    explicit = create_strategy("badge", embedding_dtype="float32", lazy_updates=1).query(
        preds, unl, lab, 12, rng=3)
    assert default.indices.tolist() == explicit.indices.tolist()
    for name in ("coreset_l2", "coreset_cosine"):
        a = create_strategy(name).query(preds, unl, lab, 12, rng=3)
        b = create_strategy(name, embedding_dtype="float32").query(preds, unl, lab, 12, rng=3)
        assert a.indices.tolist() == b.indices.tolist()


def test_auto_switches_above_the_threshold(monkeypatch):
    """With the threshold lowered to the pool size, "auto" means bfloat16 and lazy updates."""
    seen = {}
    real = badge_module.kmeans_plusplus

    def spy(embedding, k, **kwargs):
        seen["h"], seen["lazy"] = embedding.h, kwargs["lazy_updates"]
        return real(embedding, k, **kwargs)

    monkeypatch.setattr(badge_module, "HALF_PRECISION_FROM", 100)
    monkeypatch.setattr("medactive.selection.embedding.HALF_PRECISION_FROM", 100)
    monkeypatch.setattr(badge_module, "kmeans_plusplus", spy)
    preds = _predictions()
    create_strategy("badge").query(preds, np.arange(120), np.array([], int), 5, rng=0)
    assert isinstance(seen["h"], HalfMatrix) and seen["h"].kind == "bfloat16"
    assert seen["lazy"] == badge_module.AUTO_LAZY_UPDATES
    create_strategy("badge").query(preds, np.arange(99), np.array([], int), 5, rng=0)
    assert isinstance(seen["h"], np.ndarray) and seen["lazy"] == 1


def test_half_gradient_embedding_equals_rounded_features():
    preds, idx = _predictions(), np.array([7, 3, 50, 99])
    half = gradient_embedding(preds, idx, "float16")
    exact = preds.gradient_embedding(idx)
    assert isinstance(half, FactorisedEmbedding) and isinstance(half.h, HalfMatrix)
    np.testing.assert_allclose(half.a, exact.a)
    np.testing.assert_array_equal(half.h.block(0, 4),
                                  exact.h.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("options", [{"embedding_dtype": "float16"},
                                     {"embedding_dtype": "bfloat16", "lazy_updates": 8},
                                     {"seeding": "kmeans||"},
                                     {"seeding": "kmeans||", "embedding_dtype": "float16",
                                      "oversampling": 2.0, "rounds": 2}])
def test_badge_options_return_budget_unique_unlabeled(options):
    preds, unl = _predictions(), np.arange(10, 120)
    result = create_strategy("badge", **options).query(preds, unl, np.arange(10), 15, rng=1)
    assert len(set(result.indices.tolist())) == 15 and set(result.indices) <= set(unl)
    again = create_strategy("badge", **options).query(preds, unl, np.arange(10), 15, rng=1)
    assert again.indices.tolist() == result.indices.tolist()


@pytest.mark.parametrize("name", ["coreset_l2", "coreset_cosine"])
def test_coreset_float16_runs_and_rounds(name):
    preds, unl = _predictions(), np.arange(10, 120)
    half = create_strategy(name, embedding_dtype="float16").query(preds, unl, np.arange(10),
                                                                  8, rng=0)
    assert len(set(half.indices.tolist())) == 8 and set(half.indices) <= set(unl)


@pytest.mark.parametrize("name, options, match", [
    ("badge", {"embedding_dtype": "int8"}, "embedding_dtype"),
    ("badge", {"seeding": "kmeans"}, "seeding"),
    ("badge", {"lazy_updates": 0}, "lazy_updates"),
    ("badge", {"lazy_updates": 4, "n_local_trials": 3}, "n_local_trials"),
    ("badge", {"oversampling": -1.0}, "oversampling"),
    ("badge", {"rounds": 0}, "rounds"),
    ("coreset_l2", {"embedding_dtype": "half"}, "embedding_dtype")])
def test_bad_options_are_one_clear_error(name, options, match):
    with pytest.raises(ConfigError, match=match):
        create_strategy(name, **options)
