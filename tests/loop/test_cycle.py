"""The ask/tell cycle: explicit state, steps, and the same results as the whole loop."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.loop import ActiveLearningCycle, FunctionTask, LoopConfig, run_active_learning
from medactive.predictions import ArrayPredictions
from tests.loop.fake_task import FakeTask

CONFIG = LoopConfig(strategy="margin", initial=6, budget=4, rounds=3, seed=7)


def _drive(cycle: ActiveLearningCycle, task: FakeTask) -> None:
    cycle.tell(cycle.awaiting, task.pool_labels(cycle.awaiting))
    while not cycle.done:
        cycle.fit()
        cycle.evaluate()
        if not cycle.done:
            batch = cycle.query()
            cycle.tell(batch.indices, task.pool_labels(batch.indices))


def _same(a, b) -> None:
    assert [r.round for r in a] == [r.round for r in b]
    for x, y in zip(a, b):
        assert x.n_labeled == y.n_labeled and x.metrics == y.metrics
        np.testing.assert_array_equal(x.added_idx, y.added_idx)
        np.testing.assert_array_equal(x.queried_idx, y.queried_idx)
        np.testing.assert_array_equal(x.queried_scores, y.queried_scores)


def test_asking_and_telling_gives_the_records_of_the_whole_loop():
    task = FakeTask()
    cycle = ActiveLearningCycle(task, CONFIG)
    _drive(cycle, task)
    _same(cycle.records, run_active_learning(FakeTask(), CONFIG))
    assert [r.n_labeled for r in cycle.records] == [6, 10, 14, 18]
    assert cycle.records[-1].queried_idx.size == 0 and cycle.done


def test_state_is_explicit_step_by_step():
    task = FakeTask()
    cycle = ActiveLearningCycle(task, CONFIG)
    assert cycle.round == 0 and cycle.labeled_idx.size == 6 and cycle.awaiting.size == 6
    with pytest.raises(ConfigError, match="await their labels"):
        cycle.fit()
    cycle.tell(cycle.awaiting, task.pool_labels(cycle.awaiting))
    assert cycle.labels == task.pool_labels(cycle.labeled_idx)
    with pytest.raises(ConfigError, match="no model yet"):
        cycle.query()
    cycle.fit()
    assert cycle.evaluate() == {"val_accuracy": 6 / 40, "test_accuracy": 6 / 40}
    batch = cycle.query(2)  # a budget of this round only
    assert cycle.round == 1 and cycle.labeled_idx.size == 8
    np.testing.assert_array_equal(cycle.awaiting, batch.indices)
    assert cycle.records[-1].round == 0
    np.testing.assert_array_equal(cycle.records[-1].queried_idx, batch.indices)
    with pytest.raises(ConfigError, match="not in the labeled set"):
        cycle.tell([int(cycle.unlabeled_idx[0])], [0])
    with pytest.raises(ConfigError, match="2 indices but 1 labels"):
        cycle.tell(batch.indices, [0])


def test_a_cycle_rebuilt_from_records_continues_exactly():
    task = FakeTask()
    full = run_active_learning(task, CONFIG)
    resumed = ActiveLearningCycle(FakeTask(), CONFIG, completed=full[:2])
    assert resumed.round == 2 and resumed.awaiting.size == 14  # L_2 awaits the oracle again
    _drive(resumed, FakeTask())
    _same(resumed.records, full)


def test_query_on_predictions_of_your_own_needs_no_fit():
    n = 10
    probas = np.tile([0.5, 0.5], (n, 1))
    probas[:, 0] = np.linspace(0.5, 1.0, n)  # sample 0 is the least certain, sample 9 the most
    probas[:, 1] = 1 - probas[:, 0]
    task = FunctionTask(np.arange(n), fit=None, predictions=None)
    cycle = ActiveLearningCycle(task, LoopConfig(strategy="margin", initial=1, budget=3,
                                                 rounds=1), initial_idx=np.array([0]))
    batch = cycle.query(predictions=ArrayPredictions(probas=probas))
    np.testing.assert_array_equal(batch.indices, [1, 2, 3])


def test_function_task_runs_the_whole_loop():
    truth = np.arange(30) % 3
    fits = []

    def fit(idx, labels, seed, init_model):
        fits.append((len(idx), init_model is not None))
        assert labels == truth[idx].tolist()
        return {"n": len(idx)}

    def predictions(model, seed):
        rng = np.random.default_rng(seed)
        return ArrayPredictions(probas=rng.dirichlet(np.ones(3), size=30))

    task = FunctionTask(np.arange(30), fit, predictions, pool_labels=lambda idx: truth[idx],
                        evaluate=lambda model, split: {"n": model["n"]})
    config = LoopConfig(strategy="entropy", initial=3, budget=2, rounds=2, finetune=True)
    records = run_active_learning(task, config)
    assert [r.metrics["test_n"] for r in records] == [3, 5, 7]
    assert fits == [(3, False), (5, True), (7, True)]


def test_a_task_taking_labeled_idx_gets_the_rounds_labeled_set_for_dal():
    """DAL's discriminator is trained against the labeled set: the cycle hands it over to
    tasks whose predictions take ``labeled_idx`` (and not to those that do not)."""
    task = FakeTask()
    seen = []
    inner = task.predictions

    def predictions(model, *, seed, labeled_idx):
        seen.append(labeled_idx.copy())
        preds = inner(model, seed=seed)
        unlabeled = np.ones(len(task.pool_ids))
        unlabeled[labeled_idx] = 0.0  # "unlike the labeled set" = not labeled
        preds.get = lambda field, idx, _g=preds.get: (unlabeled[idx] if field == "dal_unlabeled"
                                                      else _g(field, idx))
        return preds

    task.predictions = predictions
    cycle = ActiveLearningCycle(task, LoopConfig(strategy="dal", initial=6, budget=4, rounds=1,
                                                 seed=0))
    cycle.tell(cycle.awaiting, task.pool_labels(cycle.awaiting))
    cycle.fit()
    labeled_before = np.sort(cycle.labeled_idx)
    batch = cycle.query()
    np.testing.assert_array_equal(seen[0], labeled_before)
    assert not set(batch.indices.tolist()) & set(labeled_before.tolist())
