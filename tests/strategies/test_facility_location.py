from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions
from medactive.selection.facility_location import facility_location_greedy, knn_similarity
from medactive.strategies import create_strategy, strategy_descriptions


def test_registered_defaults():
    assert "lazy-greedy" in strategy_descriptions()["facility_location"]
    s = create_strategy("facility_location")
    assert (s.n_neighbors, s.knn_backend, s.requires) == (20, "faiss", ("embeddings",))


def test_equals_the_selection_function_on_unlabeled_then_labeled_rows():
    rng = np.random.default_rng(4)
    emb = rng.normal(size=(50, 6))
    labeled = np.array([7, 30])
    unlabeled = np.setdiff1d(np.arange(50), labeled)[::-1]  # any order, pool-absolute
    r = create_strategy("facility_location", n_neighbors=6).query(
        ArrayPredictions(embeddings=emb), unlabeled, labeled, 5, rng=0)
    # the strategy stacks unlabeled rows then labeled rows: positions < 48 are candidates
    S = knn_similarity(emb[np.concatenate([unlabeled, labeled])], 6)
    pos, gains = facility_location_greedy(S, 5, candidates=np.arange(48), chosen=[48, 49],
                                          lazy=False)
    np.testing.assert_array_equal(r.indices, unlabeled[pos])
    np.testing.assert_allclose(r.scores, gains)


@pytest.mark.parametrize("options,match", [({"n_neighbors": 0}, "n_neighbors"),
                                           ({"knn_backend": "annoy"}, "knn_backend"),
                                           ({"prefilter": "entropy"}, "bad options")])
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        create_strategy("facility_location", **options)


def test_stacked_unit_embeddings_block_by_block(monkeypatch):
    from medactive.strategies import _embeddings

    monkeypatch.setattr(_embeddings, "BLOCK", 3)  # several blocks on 8 rows
    emb = np.arange(20.0).reshape(10, 2) + 1
    preds = ArrayPredictions(embeddings=emb)
    out = _embeddings.stacked_unit_embeddings(preds, np.array([9, 0, 4, 2, 7, 1]),
                                              np.array([3, 8]))
    expected = emb[[9, 0, 4, 2, 7, 1, 3, 8]]
    np.testing.assert_allclose(out, expected / np.linalg.norm(expected, axis=1)[:, None],
                               rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(emb, np.arange(20.0).reshape(10, 2) + 1)  # input untouched
