from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions
from medactive.strategies import create_strategy, strategy_descriptions


def _three_directions(n_per=4, seed=0):
    # 3 tight groups in orthogonal planes of R^6 (group g: rows 4g..4g+3), cosine 0 across
    rng = np.random.default_rng(seed)
    eye = np.eye(6)
    return np.concatenate([eye[g] + 0.3 * rng.normal(size=(n_per, 1)) * eye[3 + g]
                           for g in range(3)])


def _uncertain_probas(n, uncertain):
    probas = np.tile([0.99, 0.01], (n, 1))
    probas[uncertain] = [0.5, 0.5]
    return probas


def test_registered_defaults():
    assert "max-cover" in strategy_descriptions()["max_cover"]
    s = create_strategy("max_cover")
    assert (s.n_neighbors, s.knn_backend, s.prefilter, s.prefilter_factor) == (
        20, "faiss", None, 2)
    assert s.requires == ("embeddings",)
    assert create_strategy("max_cover", prefilter="entropy").requires == ("embeddings", "probas")


def test_one_pick_per_group_and_labeled_groups_are_covered():
    preds = ArrayPredictions(embeddings=_three_directions())
    r = create_strategy("max_cover").query(preds, np.arange(12), np.array([], int), 3, rng=0)
    assert sorted(i // 4 for i in r.indices.tolist()) == [0, 1, 2]
    unlabeled = np.setdiff1d(np.arange(12), [5])[::-1]  # group 1 has a label; any order
    r = create_strategy("max_cover").query(preds, unlabeled, np.array([5]), 2, rng=0)
    assert sorted(i // 4 for i in r.indices.tolist()) == [0, 2]
    assert np.all(np.diff(r.scores) <= 0)  # greedy gains shrink


def test_without_prefilter_same_selection_as_facility_location():
    rng = np.random.default_rng(2)
    preds = ArrayPredictions(embeddings=rng.normal(size=(60, 5)))
    labeled = np.array([3, 17, 40])
    unlabeled = np.setdiff1d(np.arange(60), labeled)
    a = create_strategy("max_cover").query(preds, unlabeled, labeled, 8, rng=0)
    b = create_strategy("facility_location").query(preds, unlabeled, labeled, 8, rng=0)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.scores, b.scores)


def test_prefilter_restricts_candidates_to_the_most_uncertain():
    X = _three_directions()
    # only rows 0, 1 (group 0) and 8 (group 2) are uncertain; budget 1 x factor 3 = 3 candidates
    preds = ArrayPredictions(embeddings=X, probas=_uncertain_probas(12, [0, 1, 8]))
    s = create_strategy("max_cover", prefilter="entropy", prefilter_factor=3)
    r = s.query(preds, np.arange(12), np.array([], int), 2, rng=0)
    assert set(r.indices.tolist()) <= {0, 1, 8}
    assert sorted(i // 4 for i in r.indices.tolist()) == [0, 2]


def test_prefilter_reads_probas_only_when_asked():
    preds = ArrayPredictions(embeddings=_three_directions())  # no probas
    create_strategy("max_cover").query(preds, np.arange(12), np.array([], int), 2, rng=0)
    with pytest.raises(ValueError, match="no 'probas'"):
        create_strategy("max_cover", prefilter="margin").query(preds, np.arange(12),
                                                               np.array([], int), 2, rng=0)


@pytest.mark.parametrize("options,match", [({"prefilter": "bald"}, "prefilter"),
                                           ({"prefilter_factor": 0}, "prefilter_factor"),
                                           ({"n_neighbors": 0}, "n_neighbors"),
                                           ({"knn_backend": "annoy"}, "knn_backend")])
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        create_strategy("max_cover", **options)
