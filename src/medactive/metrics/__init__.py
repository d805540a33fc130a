"""Evaluation metrics (segmentation metrics live in :mod:`medactive.segmentation`)."""

from __future__ import annotations

from medactive.metrics.classification import classification_metrics

__all__ = ["classification_metrics"]
