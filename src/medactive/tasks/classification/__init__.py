"""Image classification (survey §5.1): everything the classification task trains and measures.

- :mod:`.model` — :class:`~.model.Classifier` (a backbone from :mod:`medactive.encoders.backbones`
  + dropout + linear head, with MC dropout on the head);
- :mod:`.presets` — the named training recipes (``survey``, ``cpu``, ``smoke``);
- :mod:`.train` — supervised (and FixMatch) training of the whole network, predictions;
- :mod:`.head` — head-only training on frozen embeddings;
- :mod:`.augment`, :mod:`.semi_supervised` — augmentations and FixMatch's settings;
- :mod:`.metrics` — accuracy, balanced accuracy, AUC, per-class recall;
- :mod:`.task` — :class:`~.task.ClassificationTask`, what the active-learning loop drives.
"""

from __future__ import annotations

from medactive.tasks.classification.metrics import classification_metrics
from medactive.tasks.classification.model import Classifier, build_classifier
from medactive.tasks.classification.presets import TrainConfig, get_preset, list_presets
from medactive.tasks.classification.task import ClassificationTask

__all__ = ["ClassificationTask", "Classifier", "TrainConfig", "build_classifier",
           "classification_metrics", "get_preset", "list_presets"]
