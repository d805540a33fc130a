"""Contract tests run over every registered strategy (timm's ``list_models()`` loop)."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.predictions import FIELDS, SCORE_FIELDS, ArrayPredictions
from medactive.strategies import create_strategy, list_strategies, strategy_descriptions

N_POOL, N_CLASSES, DIM, T = 40, 3, 6, 4
EXPECTED = {"random", "least_confidence", "entropy", "margin", "mean_variance", "dbal", "bald",
            "badge", "coreset_l2", "coreset_cosine", "typiclust", "random_balanced",
            "random_foreground", "kmeans", "max_cover", "probcover", "facility_location",
            "dal", "vaal", "batchbald", "ensemble_entropy", "ensemble_bald",
            "qbc_vote_entropy", "qbc_kl", "tta_kl", "egl", "egl_entropy", "learning_loss",
            "evidential", "evidential_epistemic", "dfal"}
UNCERTAINTY = ["least_confidence", "entropy", "margin", "mean_variance", "dbal", "bald"]
#: composed names (SAMPLER:SCORE, hybrid:A+B, fusion:A+B): every sampler at least once
COMPOSED = ["topk:entropy", "power:bald", "softmax:margin", "rank:least_confidence",
            "stochastic_batches:mean_variance", "cluster:margin", "kdpp:dbal",
            "class_balanced:entropy", "clasp:entropy", "fusion:entropy+bald",
            "power:fusion:margin+bald", "hybrid:entropy+coreset_l2", "hybrid:power:bald+kdpp:entropy",
            "power:dal", "hybrid:vaal+kmeans", "power:egl", "kdpp:ensemble_bald",
            "fusion:tta_kl+evidential", "hybrid:learning_loss+kmeans", "rank:dfal"]


def _softmax(logits, axis=1):
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    return ArrayPredictions(probas=_softmax(rng.normal(size=(N_POOL, N_CLASSES))),
                            mc_probas=_softmax(rng.normal(size=(N_POOL, N_CLASSES, T))),
                            embeddings=rng.normal(size=(N_POOL, DIM)).astype(np.float32),
                            member_probas=_softmax(rng.normal(size=(N_POOL, N_CLASSES, T))),
                            tta_probas=_softmax(rng.normal(size=(N_POOL, N_CLASSES, T))),
                            dirichlet_alpha=1.0 + rng.exponential(size=(N_POOL, N_CLASSES)),
                            **{f: rng.uniform(size=N_POOL) for f in SCORE_FIELDS})


@pytest.fixture
def split():
    labeled = np.array([0, 5, 9, 22])
    return np.setdiff1d(np.arange(N_POOL), labeled), labeled


def test_registry_has_the_core_strategies():
    assert EXPECTED <= set(list_strategies())
    for name, description in strategy_descriptions().items():
        assert description and "\n" not in description, name


@pytest.mark.parametrize("name", list_strategies() + COMPOSED)
def test_query_contract(name, predictions, split):
    unlabeled, labeled = split
    strategy = create_strategy(name)
    assert set(strategy.requires) <= set(FIELDS)
    result = strategy.query(predictions, unlabeled, labeled, 7, rng=3)
    assert result.indices.shape == (7,) and result.scores.shape == (7,)
    assert len(set(result.indices.tolist())) == 7
    assert set(result.indices.tolist()) <= set(unlabeled.tolist())
    again = strategy.query(predictions, unlabeled, labeled, 7, rng=3)
    np.testing.assert_array_equal(result.indices, again.indices)
    np.testing.assert_array_equal(result.scores, again.scores)


@pytest.mark.parametrize("name", list_strategies() + COMPOSED)
def test_whole_pool_and_budget_errors(name, predictions, split):
    unlabeled, labeled = split
    strategy = create_strategy(name)
    everything = strategy.query(predictions, unlabeled, labeled, unlabeled.size, rng=0)
    assert sorted(everything.indices.tolist()) == unlabeled.tolist()
    with pytest.raises(ConfigError):
        strategy.query(predictions, unlabeled, labeled, unlabeled.size + 1, rng=0)
    with pytest.raises(ConfigError):
        strategy.query(predictions, unlabeled, labeled, 0, rng=0)


@pytest.mark.parametrize("name", list_strategies() + COMPOSED)
def test_only_requires_are_read(name, predictions, split):
    """A strategy reads only the fields it declares (so the loop computes only those)."""
    strategy = create_strategy(name)
    fields = {f: predictions._fields[f] if f in strategy.requires else None
              for f in FIELDS}
    strategy.query(ArrayPredictions(**fields), *split, 3, rng=0)


@pytest.mark.parametrize("name", UNCERTAINTY)
def test_segmentation_shaped_predictions(name):
    # 2D segmentation: probas [n, c, H, W], MC stacks [n, c, H, W, t]; one score per slice
    rng = np.random.default_rng(1)
    probas = _softmax(rng.normal(size=(12, 2, 4, 5)))
    mc = _softmax(rng.normal(size=(12, 2, 4, 5, T)))
    certain = np.zeros((2, 4, 5))
    certain[0] = 1.0
    probas[3], mc[3] = certain, certain[..., None].repeat(T, axis=-1)
    preds = ArrayPredictions(probas=probas, mc_probas=mc)
    result = create_strategy(name).query(preds, np.arange(12), np.array([], dtype=int), 11,
                                         rng=0)
    assert 3 not in result.indices.tolist()  # the fully certain slice is the one left out


def test_uncertainty_picks_most_uncertain(predictions, split):
    unlabeled, labeled = split
    probas = predictions.get("probas", unlabeled)
    result = create_strategy("least_confidence").query(predictions, unlabeled, labeled, 3, rng=0)
    expected = unlabeled[np.argsort(probas.max(axis=1))[:3]]
    assert result.indices.tolist() == expected.tolist()
    np.testing.assert_allclose(result.scores, 1 - np.sort(probas.max(axis=1))[:3])


def test_options_and_unknown_names():
    assert create_strategy("bald", n_mc_samples=10).n_mc_samples == 10
    with pytest.raises(ConfigError, match="choose one of"):
        create_strategy("no_such_strategy")
    with pytest.raises(ConfigError, match="bad options"):
        create_strategy("entropy", n_mc_samples=3)
    with pytest.raises(ConfigError, match="n_mc_samples"):
        create_strategy("dbal", n_mc_samples=1)
    with pytest.raises(ConfigError, match="projection_dim"):
        create_strategy("coreset_l2", projection_dim=0)


def test_nan_probabilities_give_clear_error(split):
    probas = np.full((N_POOL, 2), 0.5)
    probas[7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        create_strategy("entropy").query(ArrayPredictions(probas=probas), *split, 2, rng=0)
