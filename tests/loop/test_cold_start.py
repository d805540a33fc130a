"""Cold start (survey §4.2.1): the initial set chosen on self-supervised embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.data.pool import Dataset, Split
from medactive.errors import ConfigError
from medactive.experiment import ExperimentConfig, read_run, run_experiment
from medactive.loop import LoopConfig, initial_indices, run_active_learning
from medactive.loop.active_loop import cold_start_indices
from medactive.predictions import ArrayPredictions
from medactive.tasks.classification import ClassificationTask, get_preset
from tests.encoders.test_simclr import _two_kinds
from tests.loop.fake_task import FakeTask


class SSLFakeTask(FakeTask):
    """Pool of two well-separated groups in its 'self-supervised' embeddings: 0..29, 30..39."""

    def __init__(self) -> None:
        super().__init__(n_pool=40)
        rng = np.random.default_rng(1)
        self.group = (np.arange(40) >= 30).astype(int)
        self.emb = rng.normal(0, 0.1, (40, 4)) + 10.0 * self.group[:, None]

    def ssl_predictions(self):
        return ArrayPredictions(embeddings=self.emb)


def _config(strategy="random", initial_strategy="typiclust", seed=0):
    return LoopConfig(strategy=strategy, initial=4, budget=3, rounds=2, seed=seed,
                      initial_strategy=initial_strategy)


def test_typiclust_initial_set_covers_both_groups():
    task = SSLFakeTask()
    idx, scores = cold_start_indices(task, 4, 0, "typiclust")
    assert idx.size == 4 and np.unique(idx).size == 4 and np.all(np.diff(idx) > 0)
    assert set(task.group[idx]) == {0, 1}
    assert np.isfinite(scores).all()
    coreset, _ = cold_start_indices(task, 2, 0, "coreset_l2")
    assert set(task.group[coreset]) == {0, 1}


def test_cold_start_is_seeded_and_independent_of_the_query_strategy():
    runs = {s: run_active_learning(SSLFakeTask(), _config(s)) for s in ("random", "entropy")}
    again = run_active_learning(SSLFakeTask(), _config("entropy"))
    first = runs["random"][0].added_idx
    assert runs["entropy"][0].added_idx.tolist() == first.tolist()
    assert first.tolist() != initial_indices(40, 4, 0).tolist()
    assert set(SSLFakeTask().group[first]) == {0, 1}
    for a, b in zip(runs["entropy"], again):
        assert a.added_idx.tolist() == b.added_idx.tolist()
        assert a.queried_idx.tolist() == b.queried_idx.tolist()
        np.testing.assert_array_equal(a.added_scores, b.added_scores)


def test_random_initial_strategy_is_the_default():
    plain = run_active_learning(SSLFakeTask(), _config(initial_strategy="random"))
    assert plain[0].added_idx.tolist() == initial_indices(40, 4, 0).tolist()
    assert np.isnan(plain[0].added_scores).all()


def test_refusals():
    with pytest.raises(ConfigError, match="--ssl simclr"):
        run_active_learning(FakeTask(), _config())  # no self-supervised embeddings
    with pytest.raises(ConfigError, match="only embeddings"):
        cold_start_indices(SSLFakeTask(), 4, 0, "entropy")


def _image_dataset() -> Dataset:
    train, kinds = _two_kinds(n=48)
    val, val_kinds = _two_kinds(n=8, seed=1)
    return Dataset("kinds", ["blob", "checker"], Split(train.ids, train.images, kinds),
                   Split(np.char.add("v", val.ids), val.images, val_kinds),
                   Split(np.char.add("t", val.ids), val.images, val_kinds), in_channels=1)


def test_classification_task_pretrains_and_caches(tmp_path, monkeypatch):
    """A real task: pretraining feeds fit and the cold start; pretrained.pt serves a resume."""
    import medactive.tasks.classification.task as task_module

    config = ExperimentConfig(data="kinds", strategy="random", initial=4, budget=4, rounds=2,
                              seed=0, preset="smoke", ssl={"epochs": 1, "batch_size": 16},
                              initial_strategy="typiclust")
    preset = get_preset("smoke", epochs=1)

    class Stop(Exception):
        pass

    def stop_after_round_0(record):
        if record.round == 0:
            raise Stop

    task = ClassificationTask(_image_dataset(), preset)
    with pytest.raises(Stop):
        run_experiment(config, out_dir=tmp_path, task=task, on_round=stop_after_round_0)
    assert (tmp_path / "pretrained.pt").is_file() and task.pretrained_state is not None
    assert set(task.dataset.train.labels[read_run(tmp_path, task.pool_ids)[0].added_idx]) == {0, 1}
    model = task.fit(np.arange(4), task.pool_labels(np.arange(4)), seed=0)
    conv = "body.0.weight"
    assert model.backbone.state_dict()[conv].shape == task.pretrained_state[conv].shape

    def no_pretraining(*args, **kwargs):
        raise AssertionError("pretrained again instead of reading pretrained.pt")

    monkeypatch.setattr(task_module, "pretrain_simclr", no_pretraining)
    resumed = ClassificationTask(_image_dataset(), preset)
    completed = read_run(tmp_path, resumed.pool_ids)
    records = run_experiment(config, out_dir=tmp_path, task=resumed, completed=completed)
    assert len(records) == 3
    assert all(torch.equal(task.pretrained_state[k], resumed.pretrained_state[k])
               for k in task.pretrained_state)
    # other settings: the cached weights do not match the content key and are not used
    other = ClassificationTask(_image_dataset(), preset)
    with pytest.raises(AssertionError, match="pretrained again"):
        other.pretrain(task_module.SSLConfig(epochs=2, batch_size=16), seed=1,
                       cache_path=tmp_path / "pretrained.pt")
