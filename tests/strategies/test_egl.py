"""EGL and egl_entropy as strategies: picks by hand, blocks, the segmentation refusal."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions
from medactive.scoring.gradient import expected_gradient_length
from medactive.strategies import create_strategy, list_strategies
from medactive.strategies.registry import list_scores


def test_registered_and_picks_by_hand():
    assert {"egl", "egl_entropy"} <= set(list_strategies())
    # same features: EGL ranks by sum_y p_y ||p - e_y||: uniform > 0.9/0.1 > one-hot
    probas = np.array([[1.0, 0.0], [0.5, 0.5], [0.9, 0.1], [0.7, 0.3]])
    # a long feature vector multiplies the gradient: sample 0 stays 0 whatever its h
    feats = np.array([[100.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    preds = ArrayPredictions(probas=probas, embeddings=feats)
    result = create_strategy("egl").query(preds, np.arange(4), np.array([], int), 3, rng=0)
    assert result.indices.tolist() == [1, 3, 2]
    np.testing.assert_allclose(result.scores[0], np.sqrt(0.5) * np.sqrt(2.0))
    # entropy gradient: 0 at uniform and one-hot, so the 0.7/0.3 and 0.9/0.1 rows lead
    ent = create_strategy("egl_entropy").query(preds, np.arange(4), np.array([], int), 2, rng=0)
    assert ent.indices.tolist() == [2, 3]  # p0 p1 |log(p0/p1)|: 0.198 > 0.178


def test_scores_do_not_depend_on_blocks():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 3))
    probas = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    feats = rng.normal(size=(40, 5))
    preds = ArrayPredictions(probas=probas, embeddings=feats)
    idx = np.arange(40)[::-1]  # more than one block (the first holds 16 rows)
    got = create_strategy("egl").scores(preds, idx)
    np.testing.assert_allclose(got, expected_gradient_length(probas[idx], feats[idx]))


@pytest.mark.parametrize("name", ["egl", "egl_entropy"])
def test_segmentation_shaped_probas_refused_in_one_line(name):
    probas = np.full((5, 2, 3, 3), 0.5)
    preds = ArrayPredictions(probas=probas, embeddings=np.ones((5, 4)))
    with pytest.raises(ConfigError, match=f"^{name} is for classification") as err:
        create_strategy(name).query(preds, np.arange(5), np.array([], int), 2, rng=0)
    assert "\n" not in str(err.value)


def test_a_score_of_two_fields_composes_with_the_samplers():
    # egl reads probas and embeddings; samplers score through the strategy's own scores()
    assert {"egl", "egl_entropy"} <= set(list_scores())
    probas = np.array([[1.0, 0.0], [0.5, 0.5], [0.9, 0.1], [0.6, 0.4]])
    preds = ArrayPredictions(probas=probas, embeddings=np.ones((4, 2)))
    top = create_strategy("egl").query(preds, np.arange(4), np.array([], int), 2, rng=0)
    same = create_strategy("power:egl", beta=1e6).query(preds, np.arange(4), np.array([], int),
                                                         2, rng=0)
    assert sorted(same.indices.tolist()) == sorted(top.indices.tolist()) == [1, 3]
