"""Encoders, frozen-feature heads and FixMatch wiring in the classification task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import medactive.tasks.classification.task as task_module
from medactive.data.pool import Dataset, Split
from medactive.encoders import Encoder, load_encoder, save_encoder_file
from medactive.errors import ConfigError
from medactive.strategies import create_strategy
from medactive.tasks.classification import ClassificationTask, get_preset
from medactive.tasks.classification.head import HeadConfig
from medactive.tasks.classification.model import build_classifier


def _dataset(n=30, seed=0):
    """8 x 8 grey images; class 1 has a bright left half (a width-4 CNN sees it at once)."""
    rng = np.random.default_rng(seed)

    def split(prefix, m):
        y = np.arange(m) % 2
        x = rng.integers(0, 60, (m, 8, 8, 1), dtype=np.uint8)
        x[y == 1, :, :4] += 150
        return Split(np.array([f"{prefix}{i}" for i in range(m)]), x, y)

    return Dataset("toy", ["a", "b"], split("t", n), split("v", 10), split("s", 10),
                   in_channels=1)


def write_tiny_encoder(path, *, in_channels=1, seed=0):
    """A medactive encoder file around a random width-4 SmallCNN backbone (d = 32)."""
    torch.manual_seed(seed)
    backbone = build_classifier("smallcnn", in_channels=in_channels, n_classes=1,
                                width=4).backbone
    save_encoder_file(path, {"key": {"method": "test", "seed": seed},
                             "architecture": {"model": "smallcnn", "width": 4,
                                              "in_channels": in_channels},
                             "state": backbone.state_dict(), "quality": None})
    return path


@pytest.fixture
def encoder(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDACTIVE_CACHE", str(tmp_path / "cache"))
    return load_encoder(str(write_tiny_encoder(tmp_path / "enc.pt")), in_channels=1)


def _frozen(encoder, **kw):
    return ClassificationTask(_dataset(), get_preset("smoke"), encoder=encoder,
                              train_mode="frozen", head=HeadConfig(steps=30), **kw)


def test_finetune_starts_from_the_encoder_weights(encoder, monkeypatch):
    seen = {}
    real = task_module.fit_classifier

    def spy(*args, **kwargs):
        seen["init"] = kwargs["init_model"]
        return real(*args, **kwargs)

    monkeypatch.setattr(task_module, "fit_classifier", spy)
    task = ClassificationTask(_dataset(), get_preset("smoke", epochs=1), encoder=encoder)
    model = task.fit(np.arange(10), task.pool_labels(np.arange(10)), seed=0)
    start = seen["init"].backbone.state_dict()
    for name, value in encoder.backbone.state_dict().items():
        assert torch.equal(start[name], value), name
    # training moved a copy, never the encoder itself
    assert not torch.equal(model.backbone.body[0].weight, encoder.backbone.body[0].weight)
    # and the fresh head depends on the seed only
    again = task._fresh_model(0)
    assert torch.equal(again.fc.weight, seen["init"].fc.weight)
    assert task.describe()["encoder"]["key"] == {"method": "test", "seed": 0}


def test_frozen_predictions_feed_every_strategy_field(encoder):
    task = _frozen(encoder, semi_supervised=None)
    idx = np.arange(8)
    head = task.fit(idx, task.pool_labels(idx), seed=0)
    preds = task.predictions(head, seed=1)
    rest = np.arange(8, 30)
    assert preds.get("probas", rest).shape == (22, 2)
    assert preds.get("mc_probas", rest).shape == (22, 2, get_preset("smoke").n_mc_samples)
    assert preds.get("embeddings", rest).shape == (22, 32)
    np.testing.assert_allclose(preds.get("embeddings", rest), task.embeddings("train")[rest],
                               rtol=1e-6)  # linear head: its input is the embedding
    for name in ("badge", "bald", "coreset_l2", "random_balanced"):
        result = create_strategy(name).query(task.predictions(head, seed=1), rest, idx, 5,
                                             rng=0)
        assert len(set(result.indices.tolist())) == 5 and set(result.indices) <= set(rest)
    metrics = task.evaluate(head, "test")
    assert 0.0 <= metrics["auc"] <= 1.0
    described = task.describe()
    assert described["train_mode"] == "frozen" and described["head"]["kind"] == "linear"


def test_a_strategys_n_mc_samples_reaches_the_task_through_the_cycle(encoder):
    """Issue 11's fix in passing: ``bald`` with ``n_mc_samples=3`` scores 3 passes, not the
    preset's, and the DAL field comes from the same predictions with the labeled set."""
    from medactive.loop import ActiveLearningCycle, LoopConfig

    task = _frozen(encoder, semi_supervised=None)
    assert get_preset("smoke").n_mc_samples != 3
    stacks = []
    real = task.predictions

    def spy(model, **kwargs):
        preds = real(model, **kwargs)
        stacks.append(preds)
        return preds

    task.predictions = spy
    cycle = ActiveLearningCycle(task, LoopConfig(strategy="bald", initial=8, budget=4,
                                                 rounds=1, seed=0,
                                                 strategy_options={"n_mc_samples": 3}))
    cycle.tell(cycle.awaiting, task.pool_labels(cycle.awaiting))
    cycle.fit()
    cycle.query()
    assert stacks[0].get("mc_probas", np.arange(4)).shape == (4, 2, 3)
    # a strategy left at its default scores the preset's passes
    preds = task.predictions(cycle.model, seed=0)
    assert preds.get("mc_probas", np.arange(4)).shape[-1] == get_preset("smoke").n_mc_samples


def test_frozen_standardises_with_pool_statistics(encoder):
    task = _frozen(encoder)
    pool = task.embeddings("train")
    np.testing.assert_allclose(pool.mean(0), 0.0, atol=1e-4)
    raw = encoder.embed(task.dataset.test)
    np.testing.assert_allclose(task.embeddings("test"),
                               (raw - task._standardiser.mean) / task._standardiser.std,
                               rtol=1e-5, atol=1e-5)


def test_frozen_same_seed_same_head(encoder):
    task = _frozen(encoder)
    idx = np.arange(10)
    a = task.fit(idx, task.pool_labels(idx), seed=5)
    b = _frozen(encoder).fit(idx, task.pool_labels(idx), seed=5)
    assert torch.equal(a.fc.weight, b.fc.weight)


def test_fixmatch_finetune_gets_unlabeled_pool_without_labeled_or_pseudo(encoder,
                                                                          monkeypatch):
    seen = {}

    def fake_fit(train, labeled_idx, labels, *, unlabeled_idx=None, semi=None, **kwargs):
        seen.update(labeled=labeled_idx, unlabeled=unlabeled_idx, semi=semi)
        return "model"

    monkeypatch.setattr(task_module, "fit_classifier", fake_fit)
    task = ClassificationTask(_dataset(), get_preset("smoke"), encoder=encoder,
                              semi_supervised="fixmatch", semi_options={"threshold": 0.9})
    labeled, extra = np.array([3, 1, 4]), np.array([7, 9])
    assert task.fit(labeled, [1, 1, 0], seed=0, extra_idx=extra,
                    extra_labels=np.array([1, 1])) == "model"
    assert seen["semi"].threshold == 0.9
    expected = sorted(set(range(30)) - {1, 3, 4, 7, 9})
    assert seen["unlabeled"].tolist() == expected
    assert task.describe()["semi_supervised"]["method"] == "fixmatch"


def test_fixmatch_frozen_trains_on_unlabeled_embeddings(encoder, monkeypatch):
    seen = {}
    real = task_module.fit_head

    def spy(features, labels, **kwargs):
        seen.update(kwargs)
        return real(features, labels, **kwargs)

    monkeypatch.setattr(task_module, "fit_head", spy)
    task = _frozen(encoder, semi_supervised="fixmatch")
    labeled = np.arange(6)
    head = task.fit(labeled, task.pool_labels(labeled), seed=0)
    np.testing.assert_array_equal(seen["unlabeled"], task.embeddings("train")[6:])
    assert seen["semi"].mu == 7 and head.fc.out_features == 2


def test_cold_start_embeddings_come_from_the_encoder(encoder):
    task = _frozen(encoder)
    emb = task.ssl_predictions().get("embeddings", np.arange(30))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_task_refuses_bad_modes(encoder, monkeypatch):
    data, preset = _dataset(), get_preset("smoke")
    with pytest.raises(ConfigError, match="needs|give --encoder"):
        ClassificationTask(data, preset, train_mode="frozen")
    with pytest.raises(ConfigError, match="train mode"):
        ClassificationTask(data, preset, encoder=encoder, train_mode="thawed")
    with pytest.raises(ConfigError, match="frozen only"):
        ClassificationTask(data, preset, encoder=encoder, head=HeadConfig())
    with pytest.raises(ConfigError, match="for classification"):
        ClassificationTask(data, preset, semi_supervised="mean-teacher")
    with pytest.raises(ConfigError, match="--ssl"):
        ClassificationTask(data, preset, encoder=encoder).pretrain(None, seed=0)
    # an encoder for other channels is refused before any training
    rgb = Encoder("rgb", build_classifier("smallcnn", in_channels=3, n_classes=1,
                                          width=4).backbone, key={})
    with pytest.raises(ConfigError, match="cannot embed"):
        ClassificationTask(data, preset, encoder=rgb)
