"""Networks for classification (segmentation networks live in :mod:`medactive.segmentation`)."""

from __future__ import annotations

from medactive.models.classification import Classifier, build_classifier

__all__ = ["Classifier", "build_classifier"]
