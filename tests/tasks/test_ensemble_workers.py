"""Deep-ensemble members trained in parallel worker processes (``--ensemble-workers N``).

The members' seeds do not depend on the number of workers, so 1 and 2 workers train the same
weights, give the same probabilities and select the same samples.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from medactive.errors import ConfigError
from medactive.tasks.classification import ClassificationTask, get_preset
from medactive.tasks.classification.head import HeadConfig
from medactive.tasks.ensemble import (
    EnsembleWorkerError,
    check_ensemble_workers,
    fit_ensemble,
    member_seeds,
    resolve_ensemble_workers,
)
from tests.tasks.classification.test_task_modes import _dataset, encoder  # noqa: F401

IDX = np.arange(12)


class SeededLinear:
    """A picklable member fit: a ``Linear(3, 2)`` initialised from the member's seed; raises
    ``error`` for the member of seed ``fail_seed``."""

    def __init__(self, fail_seed: int | None = None, error: type[Exception] = ValueError):
        self.fail_seed, self.error = fail_seed, error

    def __call__(self, seed: int, init) -> nn.Module:
        if seed == self.fail_seed:
            if self.error is SystemExit:  # the worker process dies
                os._exit(3)
            raise self.error(f"member with seed {seed} cannot train")
        torch.manual_seed(seed)
        return nn.Linear(3, 2)


def test_workers_are_what_the_cores_hold_at_the_run_threads():
    # auto: as many members as the cores hold at `threads` each, never more than M
    assert resolve_ensemble_workers(None, 3, threads=1, cpus=2) == (2, 1)
    assert resolve_ensemble_workers(None, 3, threads=2, cpus=2) == (1, 2)
    assert resolve_ensemble_workers(None, 5, threads=2, cpus=16) == (5, 2)
    assert resolve_ensemble_workers(None, 1, threads=1, cpus=8) == (1, 1)
    # asked for: capped at M, threads per worker lowered so workers x threads <= cores
    assert resolve_ensemble_workers(2, 5, threads=2, cpus=4) == (2, 2)
    assert resolve_ensemble_workers(2, 5, threads=4, cpus=4) == (2, 2)
    assert resolve_ensemble_workers(4, 3, threads=2, cpus=2) == (3, 1)
    assert resolve_ensemble_workers(1, 3, threads=2, cpus=2) == (1, 2)


def test_bad_worker_counts_are_refused_in_one_line():
    assert check_ensemble_workers(None) is None and check_ensemble_workers(2) == 2
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="--ensemble-workers must be an integer >= 1"):
            check_ensemble_workers(bad)


def test_a_train_option_ensemble_workers_is_refused():
    from medactive.experiment import ExperimentConfig, check_training_options

    config = ExperimentConfig(data="default", strategy="ensemble_bald", initial=10, budget=5,
                              rounds=1, train_options={"ensemble_size": 3,
                                                       "ensemble_workers": 2})
    with pytest.raises(ConfigError, match="execution setting.*--ensemble-workers"):
        check_training_options(config, "classification")


def test_the_run_flag_refuses_zero_workers(capsys):
    from medactive.cli import main

    code = main(["run", "--data", "default", "--strategy", "ensemble_bald", "--initial", "10",
                 "--budget", "5", "--rounds", "1", "--ensemble-size", "3",
                 "--ensemble-workers", "0", "--out", "unused"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "--ensemble-workers must be at least 1 (1: members one after the other), got 0" in err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_parallel_members_equal_serial_members():
    serial = fit_ensemble(SeededLinear(), size=3, seed=5, workers=1)
    parallel = fit_ensemble(SeededLinear(), size=3, seed=5, workers=2, threads=1)
    assert len(parallel) == 3
    for a, b in zip(serial, parallel):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(parallel[0].weight, parallel[1].weight)
    assert not parallel.training


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_failing_member_raises_one_clear_error():
    seeds = member_seeds(5, 3)
    with pytest.raises(EnsembleWorkerError,
                       match=rf"ensemble member 1 \(seed {seeds[1]}\) failed in a worker "
                             rf"process: ValueError: member with seed {seeds[1]} cannot train"):
        fit_ensemble(SeededLinear(fail_seed=seeds[1]), size=3, seed=5, workers=2, threads=1)
    # a user-facing error of a member reaches the CLI as itself (one line, no traceback)
    with pytest.raises(ConfigError, match=f"member with seed {seeds[2]} cannot train"):
        fit_ensemble(SeededLinear(fail_seed=seeds[2], error=ConfigError), size=3, seed=5,
                     workers=2, threads=1)
    with pytest.raises(EnsembleWorkerError, match="a worker process died"):
        fit_ensemble(SeededLinear(fail_seed=seeds[0], error=SystemExit), size=3, seed=5,
                     workers=2, threads=1)


def _run(tmp_path, workers):
    from medactive.experiment import ExperimentConfig, run_experiment

    task = ClassificationTask(_dataset(), get_preset("smoke", ensemble_size=3),
                              ensemble_workers=workers)
    config = ExperimentConfig(data="toy", strategy="ensemble_bald", initial=12, budget=4,
                              rounds=1, preset="smoke", train_options={"ensemble_size": 3})
    out = tmp_path / f"w{workers}"
    records = run_experiment(config, out_dir=out, task=task)
    return task, records, out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_and_two_workers_give_the_same_round(tmp_path):
    one, rec1, out1 = _run(tmp_path, 1)
    two, rec2, out2 = _run(tmp_path, 2)
    # the same queries, metrics and files; only the execution record says how it ran
    for a, b in zip(rec1, rec2):
        np.testing.assert_array_equal(a.queried_idx, b.queried_idx)
        assert a.metrics == b.metrics
    for name in ("rounds.csv", "selections.csv"):
        assert (out1 / name).read_text() == (out2 / name).read_text()
    info1, info2 = (json.loads((o / "run.json").read_text()) for o in (out1, out2))
    assert info1["config"] == info2["config"] and info1["task"] == info2["task"]
    assert info1["execution"]["ensemble_workers"] == 1
    assert info2["execution"]["ensemble_workers"] == 2
    assert info2["execution"]["ensemble_member_threads"] == torch.get_num_threads()
    # the members' weights and pool probabilities, exactly
    m1 = one.fit(IDX, one.pool_labels(IDX), seed=3)
    m2 = two.fit(IDX, two.pool_labels(IDX), seed=3)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert list(s1) == list(s2) and all(torch.equal(s1[k], s2[k]) for k in s1)
    pool = np.arange(len(one.pool_ids))
    np.testing.assert_array_equal(one.predictions(m1, seed=0).get("member_probas", pool),
                                  two.predictions(m2, seed=0).get("member_probas", pool))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_frozen_heads_and_encoder_finetuning_train_in_workers_too(encoder):  # noqa: F811
    # the task (dataset, encoder, frozen embeddings) travels to the workers by pickle
    for kw in ({"train_mode": "frozen", "head": HeadConfig(steps=30)}, {}):
        models = [ClassificationTask(_dataset(), get_preset("smoke", ensemble_size=2),
                                     encoder=encoder, ensemble_workers=w, **kw)
                  .fit(IDX, list(np.arange(12) % 2), seed=4) for w in (1, 2)]
        s1, s2 = (m.state_dict() for m in models)
        assert list(s1) == list(s2) and all(torch.equal(s1[k], s2[k]) for k in s1)
