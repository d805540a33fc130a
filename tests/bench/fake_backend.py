"""A fake benchmark backend: an instant 2-D task and two fake strategies (tests only).

Importable by spawned workers and Ray tasks as ``tests.bench.fake_backend`` when the project
root is on the path. ``data_options={"sleep": s}`` makes every ``fit`` sleep ``s`` seconds, so
a test can kill a grid mid-way; ``{"fail": True}`` makes the task fail to build.
"""

from __future__ import annotations

import time

import numpy as np

from medactive.bench.config import DatasetSpec, GridConfig
from medactive.loop.active_loop import LoopConfig
from medactive.predictions import ArrayPredictions
from medactive.strategies.base import _REGISTRY, QueryResult, Strategy, register_strategy

BACKEND = "tests.bench.fake_backend"


class FakeTask:
    """Points in 2-D, label = side of a line; the model is a seeded nearest-centroid rule."""

    kind = "classification"
    primary_metric = "accuracy"

    def __init__(self, *, n_pool: int = 60, sleep: float = 0.0) -> None:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(n_pool + 80, 2))
        y = (x[:, 0] + 0.5 * x[:, 1] + 0.8 * rng.normal(size=len(x)) > 0).astype(np.int64)
        self.x_pool, self.y_pool = x[:n_pool], y[:n_pool]
        self.x_val, self.y_val = x[n_pool:n_pool + 40], y[n_pool:n_pool + 40]
        self.x_test, self.y_test = x[n_pool + 40:], y[n_pool + 40:]
        self.pool_ids = np.array([f"p{i:03d}" for i in range(n_pool)])
        self.sleep = sleep

    def pool_labels(self, idx):
        return [int(v) for v in self.y_pool[np.asarray(idx, dtype=np.int64)]]

    def fit(self, labeled_idx, labels, *, seed, init_model=None):
        if self.sleep:
            time.sleep(self.sleep)
        rng = np.random.default_rng(seed)
        x = self.x_pool[np.asarray(labeled_idx, dtype=np.int64)]
        y = np.asarray(labels)
        if (y == 0).any() and (y == 1).any():
            c0, c1 = x[y == 0].mean(axis=0), x[y == 1].mean(axis=0)
        else:
            c0, c1 = rng.normal(size=2), rng.normal(size=2)
        w = c1 - c0 + rng.normal(scale=0.3, size=2)
        b = -w @ (c0 + c1) / 2
        return w, b

    def _probas(self, model, x):
        w, b = model
        p1 = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        return np.stack([1 - p1, p1], axis=1)

    def evaluate(self, model, split):
        x, y = (self.x_val, self.y_val) if split == "val" else (self.x_test, self.y_test)
        p = self._probas(model, x)
        nll = -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-9, 1)))
        return {"accuracy": float((p.argmax(1) == y).mean()), "nll": float(nll)}

    def predictions(self, model, *, seed):
        return ArrayPredictions(probas=self._probas(model, self.x_pool), embeddings=self.x_pool)

    def describe(self):
        return {"task": "fake", "n_pool": len(self.pool_ids)}


class FakeRandom(Strategy):
    name = "fake_random"
    description = "uniform sampling (test double)"

    def _query(self, predictions, unlabeled_idx, labeled_idx, budget, rng):
        idx = rng.choice(unlabeled_idx, size=budget, replace=False)
        return QueryResult(idx, np.full(budget, np.nan))


class FakeUncertainty(Strategy):
    name = "fake_uncertainty"
    description = "smallest margin (test double)"
    requires = ("probas",)

    def _query(self, predictions, unlabeled_idx, labeled_idx, budget, rng):
        p = predictions.get("probas", unlabeled_idx)
        score = 1 - np.abs(p[:, 1] - p[:, 0]) + 1e-6 * rng.random(len(unlabeled_idx))
        order = np.argsort(-score)[:budget]
        return QueryResult(unlabeled_idx[order], score[order])


for _cls in (FakeRandom, FakeUncertainty):
    if _cls.name not in _REGISTRY:
        register_strategy(_cls)


def build_task(options):
    data_options = options.get("data_options", {})
    if data_options.get("fail"):
        raise RuntimeError("this dataset always fails")
    return FakeTask(n_pool=data_options.get("n_pool", 60), sleep=data_options.get("sleep", 0.0))


def loop_config(options):
    return LoopConfig(strategy=options["strategy"], initial=options["initial"],
                      budget=options["budget"], rounds=options["rounds"], seed=options["seed"],
                      finetune=options["finetune"],
                      strategy_options=dict(options["strategy_options"]))


def supervised_reference(options, task):
    idx = np.arange(len(task.pool_ids))
    model = task.fit(idx, task.pool_labels(idx), seed=options["seed"])
    metrics = {f"test_{k}": v for k, v in task.evaluate(model, "test").items()}
    if options.get("epochs"):  # as the real backend's training summary
        metrics.update(epochs_run=float(options["epochs"]), best_epoch=1.0)
    return metrics


def fake_grid(*, seeds=(0, 1), rounds=3, budgets=(5,), strategies=("fake_random",
              "fake_uncertainty"), sleep=0.0, supervised_seeds=1, name="fake") -> GridConfig:
    """A small grid on the fake task."""
    return GridConfig(
        name=name, strategies=tuple(strategies), seeds=tuple(seeds), rounds=rounds,
        preset="smoke", supervised_seeds=supervised_seeds, backend=BACKEND,
        datasets=(DatasetSpec(name="fake", data="fake", budgets=tuple(budgets),
                              metrics=("test_accuracy", "test_nll"),
                              data_options={"sleep": sleep} if sleep else {}),))


def fake_toml(*, name: str, rounds: int, sleep: float = 0.0) -> str:
    """The text of a TOML grid file for the fake task: two strategies, seeds 0 and 1, b = 5."""
    text = f"""
name = "{name}"
strategies = ["fake_random", "fake_uncertainty"]
seeds = [0, 1]
rounds = {rounds}
preset = "smoke"
backend = "{BACKEND}"

[[datasets]]
name = "fake"
data = "fake"
budgets = [5]
metrics = ["test_accuracy"]
"""
    if sleep:
        text += f"[datasets.data_options]\nsleep = {sleep}\n"
    return text
