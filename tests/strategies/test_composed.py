"""Composed names: SAMPLER:SCORE, hybrid:A+B and fusion:A+B, on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions
from medactive.strategies import create_strategy
from medactive.strategies.composed import predicted_membership
from medactive.strategies.registry import list_samplers, list_scores, strategy_listing

NONE = np.array([], dtype=int)


def _probas(p1):
    p1 = np.asarray(p1, dtype=float)
    return np.stack([1 - p1, p1], axis=1)


def test_samplers_and_scores_are_listed_apart():
    assert {"topk", "power", "softmax", "rank", "stochastic_batches", "cluster", "kdpp",
            "class_balanced", "clasp"} == set(list_samplers())
    assert {"entropy", "margin", "least_confidence", "mean_variance", "bald", "dbal"} \
        <= set(list_scores())
    assert "coreset_l2" not in list_scores() and "random" not in list_scores()
    text = strategy_listing()
    assert text.index("Scores") < text.index("  entropy") < text.index("Samplers") \
        < text.index("  power")


def test_topk_is_the_plain_strategy_and_large_beta_is_top_k():
    assert type(create_strategy("topk:entropy")) is type(create_strategy("entropy"))
    preds = ArrayPredictions(probas=_probas([0.5, 0.9, 0.6, 0.99, 0.45]))
    plain = create_strategy("entropy").query(preds, np.arange(5), NONE, 3, rng=0)
    power = create_strategy("power:entropy", beta=1e6).query(preds, np.arange(5), NONE, 3, rng=0)
    assert power.indices.tolist() == plain.indices.tolist() == [0, 4, 2]
    np.testing.assert_allclose(power.scores, plain.scores)


def test_hybrid_on_a_constructed_case():
    # entropy keeps the m·k = 4 most uncertain (0, 1, 2, 3); core-set then spreads k = 2 over
    # them: 0, 1, 2 sit together, 3 is far; the certain sample 5 is far too but filtered out
    probas = _probas([0.5, 0.51, 0.52, 0.55, 0.9, 0.99])
    emb = np.array([[0.0], [0.1], [0.2], [10.0], [5.0], [20.0]])
    preds = ArrayPredictions(probas=probas, embeddings=emb)
    s = create_strategy("hybrid:entropy+coreset_l2", m=2)
    assert set(s.requires) == {"probas", "embeddings"}
    picks = s.query(preds, np.arange(6), NONE, 2, rng=0).indices.tolist()
    assert 3 in picks and 5 not in picks and 4 not in picks
    # without the pre-filter core-set would take the far, certain sample 5
    assert 5 in create_strategy("coreset_l2").query(preds, np.arange(6), NONE, 2, rng=0).indices


def test_fusion_of_rank_normalised_scores_by_hand():
    # entropy ranks 0 > 1 > 2 (normalised 1, .5, 0); BALD ranks 2 > 1 > 0
    probas = _probas([0.5, 0.7, 0.9])
    mc = np.zeros((3, 2, 2))
    mc[:, 1] = [[0.5, 0.5], [0.6, 0.8], [0.1, 0.9]]
    mc[:, 0] = 1 - mc[:, 1]
    preds = ArrayPredictions(probas=probas, mc_probas=mc)
    even = create_strategy("fusion:entropy+bald").query(preds, np.arange(3), NONE, 3, rng=0)
    np.testing.assert_allclose(np.sort(even.scores), [0.5, 0.5, 0.5])
    tilted = create_strategy("fusion:entropy+bald", weights=[0.8, 0.2])
    r = tilted.query(preds, np.arange(3), NONE, 3, rng=0)
    assert r.indices.tolist() == [0, 1, 2]
    np.testing.assert_allclose(r.scores, [0.8, 0.5, 0.2])


def test_class_balanced_on_dense_predictions_counts_every_predicted_class():
    # 2D segmentation [n, c, H, W]: slice 1 has a pixel of class 2, the rest only 0 and 1
    probas = np.zeros((4, 3, 2, 2))
    probas[:, 0] = 1.0
    probas[:2, 0, 0, 0], probas[:2, 1, 0, 0] = 0.0, 1.0
    probas[1, 1, 0, 0], probas[1, 2, 0, 0] = 0.0, 1.0
    member = predicted_membership(ArrayPredictions(probas=probas), np.arange(4))
    assert member.tolist() == [[True, True, False], [True, False, True], [True, False, False],
                               [True, False, False]]
    r = create_strategy("class_balanced:entropy").query(ArrayPredictions(probas=probas),
                                                        np.arange(4), NONE, 2, rng=0)
    assert r.indices[0] in (0, 1)


def test_options_go_to_sampler_and_score():
    s = create_strategy("power:bald", beta=2.0, n_mc_samples=10)
    assert s.options["beta"] == 2.0 and s.n_mc_samples == 10
    assert create_strategy("hybrid:bald+kdpp:dbal", n_mc_samples=5, m=3).n_mc_samples == 5
    with pytest.raises(ConfigError, match="unknown sampler"):
        create_strategy("sorted:entropy")
    with pytest.raises(ConfigError, match="not a score"):
        create_strategy("power:coreset_l2")
    with pytest.raises(ConfigError, match="unknown option"):
        create_strategy("power:entropy", n_mc_samples=3)
    with pytest.raises(ConfigError, match="beta"):
        create_strategy("softmax:entropy", beta=-1)
    with pytest.raises(ConfigError, match="hybrid takes two"):
        create_strategy("hybrid:entropy")
    with pytest.raises(ConfigError, match="weights"):
        create_strategy("fusion:entropy+bald", weights=[1.0])
    with pytest.raises(ConfigError, match="choose one of"):
        create_strategy("no_such_strategy")


class _CountingPredictions(ArrayPredictions):
    """Records how many rows of each field were fetched."""

    def __init__(self, **fields):
        super().__init__(**fields)
        self.fetched: dict[str, int] = {}

    def get(self, field, idx):
        self.fetched[field] = self.fetched.get(field, 0) + len(idx)
        return super().get(field, idx)


@pytest.mark.parametrize("sampler", ["cluster", "kdpp"])
def test_diversity_samplers_fetch_only_the_candidates_embeddings(sampler):
    # 200 unlabeled samples, b = 3, 10 candidates a pick: 30 embedding rows, not 200
    rng = np.random.default_rng(0)
    probas = rng.dirichlet(np.ones(3), size=200)
    preds = _CountingPredictions(probas=probas, embeddings=rng.normal(size=(200, 4)))
    picked = create_strategy(f"{sampler}:margin").query(preds, np.arange(200), np.array([], int),
                                                          3, rng=0).indices
    assert preds.fetched["embeddings"] == 30
    assert preds.fetched["probas"] == 200 and len(set(picked.tolist())) == 3
