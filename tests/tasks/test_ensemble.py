"""Deep ensembles in the classification task: M seeded members, evaluated by their mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.tasks.classification import ClassificationTask, get_preset
from medactive.tasks.classification.head import HeadConfig, head_probas
from medactive.tasks.classification.metrics import classification_metrics
from medactive.tasks.ensemble import Ensemble, ensemble_size_of, member_seeds
from tests.tasks.classification.test_task_modes import _dataset, encoder  # noqa: F401

IDX = np.arange(12)


def _task(size, **kw):
    return ClassificationTask(_dataset(), get_preset("smoke", ensemble_size=size), **kw)


def _frozen(size, enc):
    return ClassificationTask(_dataset(), get_preset("smoke", ensemble_size=size), encoder=enc,
                              train_mode="frozen", head=HeadConfig(steps=30))


def _pool_probas(task, model):
    return task.predictions(model, seed=0).get("probas", np.arange(len(task.pool_ids)))


def test_member_seeds_keep_the_round_seed_first():
    seeds = member_seeds(7, 3)
    assert seeds[0] == 7 and len(set(seeds)) == 3
    assert member_seeds(7, 3) == seeds and member_seeds(7, 1) == [7]


@pytest.mark.slow
def test_size_one_is_the_single_model_of_today():
    plain = ClassificationTask(_dataset(), get_preset("smoke"))
    one = _task(1)
    a = plain.fit(IDX, plain.pool_labels(IDX), seed=3)
    b = one.fit(IDX, one.pool_labels(IDX), seed=3)
    assert not isinstance(b, Ensemble)
    np.testing.assert_array_equal(_pool_probas(plain, a), _pool_probas(one, b))
    assert "member_probas" not in one.predictions(b, seed=0).providers


@pytest.mark.slow
def test_members_differ_member_zero_is_the_plain_model_and_runs_repeat():
    task = _task(3)
    model = task.fit(IDX, task.pool_labels(IDX), seed=3)
    assert isinstance(model, Ensemble) and model.n_members == 3
    preds = task.predictions(model, seed=0)
    pool = np.arange(len(task.pool_ids))
    members = preds.get("member_probas", pool)
    assert members.shape == (len(pool), 2, 3)
    assert not np.allclose(members[..., 0], members[..., 1])
    assert not np.allclose(members[..., 1], members[..., 2])
    np.testing.assert_allclose(preds.get("probas", pool), members.mean(axis=-1), atol=1e-12)
    # member 0 is what a single-model run trains with the round's seed
    plain = ClassificationTask(_dataset(), get_preset("smoke"))
    single = plain.fit(IDX, plain.pool_labels(IDX), seed=3)
    np.testing.assert_array_equal(members[..., 0], _pool_probas(plain, single))
    np.testing.assert_array_equal(preds.get("embeddings", pool),
                                  plain.predictions(single, seed=0).get("embeddings", pool))
    again = _task(3).fit(IDX, task.pool_labels(IDX), seed=3)
    np.testing.assert_array_equal(task.predictions(again, seed=0).get("member_probas", pool),
                                  members)


@pytest.mark.slow
def test_evaluate_is_the_metrics_of_the_mean_probabilities():
    task = _task(3)
    model = task.fit(IDX, task.pool_labels(IDX), seed=1)
    single = ClassificationTask(_dataset(), get_preset("smoke"))
    probas = [single._probas(m, "test") for m in model]
    mean = (probas[0] + probas[1] + probas[2]) / 3
    want = classification_metrics(task.dataset.test.labels, mean)
    assert task.evaluate(model, "test") == pytest.approx(want)
    assert task.describe()["ensemble"]["size"] == 3


@pytest.mark.slow
def test_a_saved_ensemble_loads_back(tmp_path):
    task = _task(2)
    model = task.fit(IDX, task.pool_labels(IDX), seed=1)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert ensemble_size_of(state) == 2
    loaded = task.load_model(state)
    assert isinstance(loaded, Ensemble)
    assert task.evaluate(loaded, "test") == task.evaluate(model, "test")
    assert ensemble_size_of(model[0].state_dict()) is None


@pytest.mark.slow
def test_frozen_heads_form_an_ensemble(encoder):  # noqa: F811
    task = _frozen(3, encoder)
    model = task.fit(IDX, task.pool_labels(IDX), seed=2)
    assert isinstance(model, Ensemble) and model.n_members == 3
    pool = np.arange(len(task.pool_ids))
    members = task.predictions(model, seed=0).get("member_probas", pool)
    assert not np.allclose(members[..., 0], members[..., 1])
    single = _frozen(1, encoder)
    head = single.fit(IDX, single.pool_labels(IDX), seed=2)
    np.testing.assert_array_equal(members[..., 0], _pool_probas(single, head))
    val = task.embeddings("val")
    mean = sum(head_probas(head, val) for head in model) / 3
    assert task.evaluate(model, "val") == pytest.approx(
        classification_metrics(task.dataset.val.labels, mean))
    loaded = task.load_model(model.state_dict())
    assert task.evaluate(loaded, "val") == task.evaluate(model, "val")


@pytest.mark.slow
def test_a_grid_dataset_sets_the_ensemble_size(tmp_path):
    from medactive.bench.config import load_grid
    from medactive.experiment import ExperimentConfig, build_task

    path = tmp_path / "grid.toml"
    path.write_text('name = "ens"\nstrategies = ["ensemble_bald"]\nseeds = [0]\nrounds = 1\n'
                    'preset = "smoke"\n[[datasets]]\nname = "pneu"\ndata = "default"\n'
                    'budgets = [10]\n[datasets.train_options]\nensemble_size = 3\n')
    grid = load_grid(path)
    options = grid.unit_options(grid.units()[0])
    assert options["train_options"] == {"ensemble_size": 3}
    task = build_task(ExperimentConfig(**options))
    assert task.config.ensemble_size == 3


@pytest.mark.slow
def test_finetuning_continues_each_member_from_its_predecessor(monkeypatch):
    task = _task(2)
    first = task.fit(IDX, task.pool_labels(IDX), seed=1)
    seen = []
    real = task._fit_model

    def spy(*args, **kwargs):
        seen.append((kwargs["seed"], kwargs["init_model"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(task, "_fit_model", spy)
    task.fit(IDX, task.pool_labels(IDX), seed=5, init_model=first)
    assert [s for s, _ in seen] == member_seeds(5, 2)
    assert seen[0][1] is first[0] and seen[1][1] is first[1]
