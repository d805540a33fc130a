"""The simulated oracle: reveals ground-truth labels (benchmarks, ``medactive run``)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Oracle(Protocol):
    """Provides labels for pool indices."""

    def label(self, idx: np.ndarray) -> list[Any]:
        """Labels of pool indices ``idx``, in the same order."""
        ...


class SimulatedOracle:
    """Answers queries with the ground truth the task holds (survey §2, simulated annotator).

    Args:
        task: a :class:`~medactive.loop.task.Task` whose ``pool_labels`` gives the truth.
    """

    def __init__(self, task) -> None:
        self.task = task
        self.n_queried = 0

    def label(self, idx: np.ndarray) -> list[Any]:
        self.n_queried += len(idx)
        return self.task.pool_labels(np.asarray(idx, dtype=np.int64))
