"""Tasks: what the AL loop trains, evaluates and predicts with (see :mod:`medactive.loop.task`)."""

from __future__ import annotations

from medactive.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask"]
