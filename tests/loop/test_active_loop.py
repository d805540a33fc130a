from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.loop import LoopConfig, initial_indices, run_active_learning
from tests.loop.fake_task import FakeTask


def test_rounds_grow_labeled_set_by_budget():
    task = FakeTask()
    records = run_active_learning(task, LoopConfig("entropy", initial=5, budget=3, rounds=2))
    assert [r.round for r in records] == [0, 1, 2]
    assert [r.n_labeled for r in records] == [5, 8, 11]
    assert records[0].added_idx.tolist() == initial_indices(40, 5, 0).tolist()
    assert records[1].added_idx.tolist() == records[0].queried_idx.tolist()
    assert records[2].queried_idx.size == 0
    picked = np.concatenate([records[0].added_idx, records[0].queried_idx,
                             records[1].queried_idx])
    assert np.unique(picked).size == 11
    # the round-r model was trained on exactly L_r
    assert [n for n, _ in task.fits] == [5, 8, 11]
    assert records[2].metrics["test_accuracy"] == pytest.approx(11 / 40)


def test_initial_set_depends_only_on_seed():
    a = run_active_learning(FakeTask(), LoopConfig("random", initial=6, budget=2, rounds=1, seed=3))
    b = run_active_learning(FakeTask(), LoopConfig("entropy", initial=6, budget=2, rounds=1, seed=3))
    assert a[0].added_idx.tolist() == b[0].added_idx.tolist()
    c = run_active_learning(FakeTask(), LoopConfig("random", initial=6, budget=2, rounds=1, seed=4))
    assert a[0].added_idx.tolist() != c[0].added_idx.tolist()


@pytest.mark.parametrize("strategy", ["random", "margin", "coreset_l2"])
def test_resume_gives_same_result_as_uninterrupted(strategy):
    config = LoopConfig(strategy, initial=4, budget=3, rounds=3, seed=1)
    full = run_active_learning(FakeTask(), config)
    first_two = full[:2]
    resumed = run_active_learning(FakeTask(), config, completed=first_two)
    assert len(resumed) == 4
    for a, b in zip(full, resumed):
        assert a.queried_idx.tolist() == b.queried_idx.tolist()
        assert a.metrics == b.metrics


def test_budget_larger_than_pool_is_refused():
    with pytest.raises(ConfigError, match="more than the pool"):
        run_active_learning(FakeTask(n_pool=10), LoopConfig("random", initial=5, budget=4,
                                                             rounds=2))


def test_on_round_called_in_order():
    seen = []
    run_active_learning(FakeTask(), LoopConfig("random", initial=2, budget=2, rounds=2),
                        on_round=lambda r: seen.append(r.round))
    assert seen == [0, 1, 2]
