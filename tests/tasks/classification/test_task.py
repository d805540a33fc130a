from __future__ import annotations

import numpy as np
import pytest

import medactive.tasks.classification.task as task_module
from medactive.data.pool import Dataset, Split
from medactive.errors import ConfigError
from medactive.tasks.classification import ClassificationTask, get_preset


def _dataset(n=30, seed=0):
    rng = np.random.default_rng(seed)

    def split(prefix, m):
        return Split(np.array([f"{prefix}{i}" for i in range(m)]),
                     rng.integers(0, 255, (m, 8, 8, 1), dtype=np.uint8), rng.integers(0, 2, m))

    return Dataset("toy", ["a", "b"], split("t", n), split("v", 8), split("s", 8), in_channels=1)


@pytest.fixture
def task_and_model():
    task = ClassificationTask(_dataset(), get_preset("smoke", epochs=1), chunk_size=7)
    idx = np.arange(10)
    return task, task.fit(idx, task.pool_labels(idx), seed=0)


def test_one_inference_pass_serves_probas_and_embeddings(task_and_model, monkeypatch):
    task, model = task_and_model
    calls = []
    real = task_module.predict
    monkeypatch.setattr(task_module, "predict",
                        lambda *a, **k: calls.append(len(a[2])) or real(*a, **k))
    preds = task.predictions(model, seed=0)
    unlabeled = np.arange(10, 30)
    p = preds.get("probas", unlabeled)
    h = preds.get("embeddings", unlabeled)
    assert p.shape == (20, 2) and h.shape[0] == 20
    assert sum(calls) == 20 and max(calls) <= 7  # chunked, and each row predicted once


def test_disk_cache_float16(task_and_model, tmp_path):
    task, model = task_and_model
    task.cache_dir, task.cache_dtype = str(tmp_path), "float16"
    preds = task.predictions(model, seed=0)
    p = preds.get("probas", np.arange(30))
    assert np.allclose(p.sum(1), 1.0, atol=1e-3)
    assert list(tmp_path.glob("predictions_001/*.npy"))


def test_labels_outside_class_set_rejected(task_and_model):
    task, _ = task_and_model
    with pytest.raises(ConfigError, match="outside the class set"):
        task.fit(np.arange(3), [0, 1, 5], seed=0)
