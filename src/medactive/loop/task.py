"""The seam between the active-learning loop and a task (classification, segmentation).

The loop (:mod:`medactive.loop.active_loop`) is task-agnostic; a task knows its data, model,
training recipe and metrics. One loop serves the benchmark, ``medactive run`` and the human
workflow; they differ only in the oracle and where state is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from medactive._validation import accepts_keyword
from medactive.predictions import Predictions


class Task(Protocol):
    """What the loop needs from a task.

    Attributes:
        kind: ``"classification"`` or ``"segmentation"``.
        pool_ids: ``[n_pool]`` stable sample ids of the AL pool (train split).
        primary_metric: validation metric used to keep the best checkpoint (e.g.
            ``"accuracy"`` or ``"dice_mean"``); higher is better.
        supports_pseudo_labels: optional; ``True`` when ``fit`` accepts ``extra_idx`` and
            ``extra_labels`` (pseudo-labelled samples, CEAL). The loop refuses pseudo-labelling
            for a task without it.
    """

    kind: str
    pool_ids: np.ndarray
    primary_metric: str

    def pool_labels(self, idx: np.ndarray) -> list[Any]:
        """Ground-truth labels of pool indices ``idx`` (for the simulated oracle)."""
        ...

    def fit(self, labeled_idx: np.ndarray, labels: list[Any], *, seed: int,
            init_model: Any | None = None) -> Any:
        """Train a model on pool samples ``labeled_idx`` with ``labels`` (same order).

        ``init_model`` is the previous round's model when fine-tuning, else ``None`` (train from
        scratch). Returns the model with the best validation ``primary_metric``. A task with
        ``supports_pseudo_labels`` also takes ``extra_idx=`` / ``extra_labels=``: pseudo-labelled
        pool samples to train on besides the labeled ones (they are not labels).
        """
        ...

    def evaluate(self, model: Any, split: str) -> dict[str, float]:
        """Metrics of ``model`` on ``"val"`` or ``"test"`` (keys without the split prefix)."""
        ...

    def predictions(self, model: Any, *, seed: int) -> Predictions:
        """Lazy model outputs over the pool (fields are computed when a strategy asks).

        A task may also take ``labeled_idx=`` (the round's labeled pool indices): what it
        needs for fields trained against the labeled set, e.g. DAL's and VAAL's
        discriminators. :func:`task_predictions` passes it to the tasks that take it.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description (data source, preset, model) for run.json."""
        ...


class FunctionTask:
    """A :class:`Task` made of plain functions: active learning around a model of your own.

    Args:
        pool_ids: ``[n_pool]`` ids of the pool samples (any strings or numbers).
        fit: ``fit(labeled_idx, labels, seed, init_model) -> model``: train your model on pool
            indices ``labeled_idx`` with ``labels`` (same order); ``init_model`` is the previous
            round's model when fine-tuning, else ``None``.
        predictions: ``predictions(model, seed) -> Predictions``: what strategies read over the
            whole pool (e.g. :func:`medactive.inference.model_predictions`).
        evaluate: ``evaluate(model, split) -> {name: value}`` for ``"val"`` and ``"test"``
            (optional: no metrics without it).
        pool_labels: ground truth of pool indices, for a simulated oracle (optional).
        kind: ``"classification"`` or ``"segmentation"``.
        primary_metric: the validation metric your ``fit`` keeps the best model by.
    """

    def __init__(self, pool_ids: Sequence[Any] | np.ndarray,
                 fit: Callable[[np.ndarray, list[Any], int, Any | None], Any],
                 predictions: Callable[[Any, int], Predictions], *,
                 evaluate: Callable[[Any, str], dict[str, float]] | None = None,
                 pool_labels: Callable[[np.ndarray], Sequence[Any]] | None = None,
                 kind: str = "classification", primary_metric: str = "accuracy") -> None:
        self.pool_ids = np.asarray(pool_ids)
        self._fit, self._predictions = fit, predictions
        self._evaluate, self._pool_labels = evaluate, pool_labels
        self.kind, self.primary_metric = kind, primary_metric

    def pool_labels(self, idx: np.ndarray) -> list[Any]:
        if self._pool_labels is None:
            raise TypeError("this FunctionTask was given no pool_labels: tell the cycle labels "
                            "yourself instead of using a simulated oracle")
        return list(self._pool_labels(np.asarray(idx, dtype=np.int64)))

    def fit(self, labeled_idx: np.ndarray, labels: list[Any], *, seed: int,
            init_model: Any | None = None) -> Any:
        return self._fit(labeled_idx, labels, seed, init_model)

    def evaluate(self, model: Any, split: str) -> dict[str, float]:
        return {} if self._evaluate is None else dict(self._evaluate(model, split))

    def predictions(self, model: Any, *, seed: int) -> Predictions:
        return self._predictions(model, seed)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "task": "FunctionTask", "n_pool": int(self.pool_ids.size)}


def task_predictions(task: Task, model: Any, *, seed: int,
                     labeled_idx: np.ndarray) -> Predictions:
    """``task.predictions(model, seed=seed)``, with ``labeled_idx=`` when the task takes it."""
    if accepts_keyword(task.predictions, "labeled_idx"):
        return task.predictions(model, seed=seed, labeled_idx=labeled_idx)
    return task.predictions(model, seed=seed)
