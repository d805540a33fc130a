"""The seam between the active-learning loop and a task (classification, segmentation).

The loop (:mod:`medactive.loop.active_loop`) is task-agnostic; a task knows its data, model,
training recipe and metrics. One loop serves the benchmark, ``medactive run`` and the human
workflow; they differ only in the oracle and where state is kept.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

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
        """Lazy model outputs over the pool (fields are computed when a strategy asks)."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description (data source, preset, model) for run.json."""
        ...
