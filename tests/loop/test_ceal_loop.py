"""CEAL in the AL loop: which pseudo-labels reach ``fit``, their quality metric, resume, refusal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medactive._random import derive_seed
from medactive.errors import ConfigError
from medactive.loop import LoopConfig, PseudoLabelConfig, run_active_learning
from medactive.loop.pseudo_label import select_pseudo_labels
from medactive.predictions import ArrayPredictions
from tests.loop.fake_task import FakeTask

#: 3 classes: max entropy ln 3 = 1.10; the fake task's random probabilities give a few below 0.8
CEAL = PseudoLabelConfig(entropy=0.8, decay=0.1)


class PseudoFakeTask(FakeTask):
    """The loop tests' fake task, recording what each ``fit`` was given."""

    supports_pseudo_labels = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls: list[dict[str, np.ndarray]] = []

    def fit(self, labeled_idx, labels, *, seed, init_model=None, extra_idx=None,
            extra_labels=None):
        self.calls.append({"labeled": np.array(labeled_idx), "labels": np.array(labels),
                           "extra": np.array(extra_idx), "extra_labels": np.array(extra_labels)})
        return super().fit(labeled_idx, labels, seed=seed, init_model=init_model)


def _config(pseudo=CEAL) -> LoopConfig:
    return LoopConfig("entropy", initial=5, budget=3, rounds=3, seed=2, pseudo_label=pseudo)


def test_round_k_plus_1_trains_on_exactly_the_set_round_k_chose():
    task = PseudoFakeTask()
    config = _config()
    records = run_active_learning(task, config)
    assert task.calls[0]["extra"].size == 0 and records[0].pseudo_idx.size == 0
    for k in range(config.rounds):
        # recompute P_k from round k's predictions, by the pure function
        labeled = np.concatenate([records[0].added_idx]
                                 + [r.queried_idx for r in records[:k]])
        unlabeled = np.setdiff1d(np.arange(40), labeled)
        probas = task.predictions(None, seed=derive_seed(config.seed, "predict", k)).get(
            "probas", unlabeled)
        idx, labels = select_pseudo_labels(probas, unlabeled, threshold=CEAL.threshold(k),
                                           exclude_idx=records[k].queried_idx)
        assert records[k].next_pseudo_idx.tolist() == idx.tolist()
        assert records[k].next_pseudo_labels.tolist() == labels.tolist()
        call = task.calls[k + 1]
        assert call["extra"].tolist() == idx.tolist()
        assert call["extra_labels"].tolist() == labels.tolist()
        assert records[k + 1].pseudo_idx.tolist() == idx.tolist()
        assert records[k + 1].metrics["n_pseudo"] == idx.size
    assert sum(r.pseudo_idx.size for r in records) > 0  # the test exercises something
    assert records[-1].next_pseudo_idx.size == 0  # nothing is chosen after the last round


def test_pseudo_labels_never_become_labels_or_selections():
    task = PseudoFakeTask()
    records = run_active_learning(task, _config())
    assert [r.n_labeled for r in records] == [5, 8, 11, 14]
    for call, record in zip(task.calls, records):
        assert call["labeled"].size == record.n_labeled
        assert np.intersect1d(call["labeled"], call["extra"]).size == 0
        # the labels handed over are the oracle's, for the labeled samples only
        assert call["labels"].tolist() == task.pool_labels(call["labeled"])
    for k, record in enumerate(records[:-1]):
        assert np.intersect1d(record.next_pseudo_idx, record.queried_idx).size == 0
        assert np.intersect1d(record.next_pseudo_idx, task.calls[k]["labeled"]).size == 0


def test_off_changes_nothing():
    plain = run_active_learning(FakeTask(), _config(pseudo=None))  # fit takes no extra_* here
    on = run_active_learning(PseudoFakeTask(), _config())
    for a, b in zip(plain, on):
        assert a.pseudo_idx.size == a.next_pseudo_idx.size == 0
        assert "n_pseudo" not in a.metrics and "pseudo_label_accuracy" not in a.metrics
        # the fake predictions do not depend on the model: the same batches either way
        assert a.queried_idx.tolist() == b.queried_idx.tolist()
        assert a.added_idx.tolist() == b.added_idx.tolist()
    assert LoopConfig("entropy", 5, 3, 3).pseudo_label is None


class TableTask(PseudoFakeTask):
    """Six samples whose predictions are the fixed table below, whatever the model."""

    PROBAS = np.array([[0.5, 0.5], [0.5, 0.5],          # 0, 1: the initial labeled set
                       [0.6, 0.4],                      # 2: most uncertain -> queried
                       [0.999, 0.001],                  # 3: entropy 0.00791 -> pseudo 0
                       [0.001, 0.999],                  # 4: entropy 0.00791 -> pseudo 1
                       [0.9999, 0.0001]])               # 5: entropy 0.00102 -> pseudo 0

    def __init__(self) -> None:
        super().__init__(n_pool=6, n_classes=2)
        self.truth = np.array([0, 1, 1, 0, 0, 0])  # sample 4's pseudo-label 1 is wrong

    def predictions(self, model, *, seed):
        return ArrayPredictions(probas=self.PROBAS)


def test_pseudo_label_accuracy_by_hand():
    config = LoopConfig("entropy", initial=2, budget=1, rounds=1,
                        pseudo_label=PseudoLabelConfig(entropy=0.05))
    task = TableTask()
    records = run_active_learning(task, config, initial_idx=np.array([0, 1]))
    assert records[0].queried_idx.tolist() == [2]
    assert records[0].metrics["n_pseudo"] == 0
    assert math.isnan(records[0].metrics["pseudo_label_accuracy"])
    assert records[1].pseudo_idx.tolist() == [5, 3, 4]
    assert records[1].pseudo_labels.tolist() == [0, 0, 1]
    assert records[1].metrics["n_pseudo"] == 3
    assert records[1].metrics["pseudo_label_accuracy"] == pytest.approx(2 / 3)
    assert task.calls[1]["labeled"].tolist() == [0, 1, 2]


def test_no_accuracy_when_the_oracle_cannot_tell():
    class Annotator:  # a human-like oracle: labels queried samples, knows nothing else
        def __init__(self, task):
            self.task = task

        def label(self, idx):
            return self.task.pool_labels(idx)

    task = TableTask()
    config = LoopConfig("entropy", initial=2, budget=1, rounds=1,
                        pseudo_label=PseudoLabelConfig(entropy=0.05))
    records = run_active_learning(task, config, oracle=Annotator(task),
                                  initial_idx=np.array([0, 1]))
    assert records[1].metrics["n_pseudo"] == 3
    assert "pseudo_label_accuracy" not in records[1].metrics


def test_cap_limits_the_set():
    config = LoopConfig("entropy", initial=2, budget=1, rounds=1,
                        pseudo_label=PseudoLabelConfig(entropy=0.05, max=2))
    records = run_active_learning(TableTask(), config, initial_idx=np.array([0, 1]))
    assert records[1].pseudo_idx.tolist() == [5, 3]


def _same(a, b, *, rel: float = 0.0) -> None:
    """Records equal; metrics within ``rel`` (a run folder keeps 6 significant digits)."""
    assert a.round == b.round and a.n_labeled == b.n_labeled
    for name in ("added_idx", "queried_idx", "pseudo_idx", "pseudo_labels", "next_pseudo_idx",
                 "next_pseudo_labels"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    np.testing.assert_array_equal(a.queried_scores, b.queried_scores)
    assert a.metrics.keys() == b.metrics.keys()
    for key in a.metrics:
        assert a.metrics[key] == pytest.approx(b.metrics[key], rel=rel, nan_ok=True), key


def test_resume_after_round_1_equals_an_uninterrupted_run():
    config = _config()
    full_task = PseudoFakeTask()
    full = run_active_learning(full_task, config)
    resumed_task = PseudoFakeTask()
    resumed = run_active_learning(resumed_task, config, completed=full[:2])
    assert len(resumed) == len(full)
    for a, b in zip(full, resumed):
        _same(a, b)
    # round 2 was trained on round 1's pseudo-labels, read from round 1's record
    assert resumed_task.calls[0]["extra"].tolist() == full_task.calls[2]["extra"].tolist()
    assert full[1].next_pseudo_idx.size > 0


def test_a_task_without_the_capability_is_refused():
    with pytest.raises(ConfigError, match="pseudo-label"):
        run_active_learning(FakeTask(), _config())


def test_segmentation_is_refused():
    from medactive.tasks.segmentation.task import SegmentationTask

    task = SegmentationTask.__new__(SegmentationTask)  # refused before any data is touched
    with pytest.raises(ConfigError, match="pseudo-label.*segmentation"):
        run_active_learning(task, _config())
