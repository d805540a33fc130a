"""medactive: deep active learning for medical image analysis.

The query model follows Wang et al. (2024), Eq. 1: ``D_q = S(I(x, f_theta), b)``. Informativeness
``I`` lives in :mod:`medactive.scoring`, sampling ``S`` in :mod:`medactive.selection`, and each
named method composing the two in :mod:`medactive.strategies`.

The names below are the public API (``medactive.__all__``), one import away::

    from medactive import ActiveLearningCycle, FunctionTask, LoopConfig, create_strategy

They load on first use, so ``import medactive`` alone imports neither torch nor any data
library.

- Query: :func:`create_strategy`, :func:`list_strategies`, :func:`register_strategy`,
  :class:`Strategy`, :class:`QueryResult`, :class:`Predictions`, :class:`ArrayPredictions`;
- your own model: :func:`model_predictions` (probabilities, MC-dropout stacks, embeddings);
- the loop: :class:`ActiveLearningCycle` (ask/tell), :func:`run_active_learning`,
  :class:`FunctionTask`, :class:`Task`, :class:`LoopConfig`, :class:`RoundRecord`;
- whole runs: :class:`ExperimentConfig`, :func:`run_experiment`;
- tasks and data: :class:`ClassificationTask`, :class:`SegmentationTask`,
  :func:`build_segmentation_task`, :func:`load_classification_data`,
  :func:`load_segmentation_data`; encoders: :func:`load_encoder`, :func:`pretrain_encoder`;
- errors: :class:`MedactiveError`, :class:`ConfigError`, :class:`DataError`.
"""

from __future__ import annotations

import importlib
from typing import Any

from medactive._version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "create_strategy": "medactive.strategies",
    "list_strategies": "medactive.strategies",
    "strategy_descriptions": "medactive.strategies",
    "register_strategy": "medactive.strategies",
    "Strategy": "medactive.strategies",
    "QueryResult": "medactive.strategies",
    "Predictions": "medactive.predictions",
    "ArrayPredictions": "medactive.predictions",
    "model_predictions": "medactive.inference",
    "ActiveLearningCycle": "medactive.loop",
    "FunctionTask": "medactive.loop",
    "Task": "medactive.loop",
    "LoopConfig": "medactive.loop",
    "RoundRecord": "medactive.loop",
    "run_active_learning": "medactive.loop",
    "ExperimentConfig": "medactive.experiment",
    "run_experiment": "medactive.experiment",
    "ClassificationTask": "medactive.tasks.classification",
    "SegmentationTask": "medactive.tasks.segmentation",
    "build_segmentation_task": "medactive.tasks.segmentation",
    "load_classification_data": "medactive.data.classification",
    "load_segmentation_data": "medactive.data.segmentation",
    "load_encoder": "medactive.encoders",
    "pretrain_encoder": "medactive.encoders",
    "MedactiveError": "medactive.errors",
    "ConfigError": "medactive.errors",
    "DataError": "medactive.errors",
}

__all__ = [
    "ActiveLearningCycle",
    "ArrayPredictions",
    "ClassificationTask",
    "ConfigError",
    "DataError",
    "ExperimentConfig",
    "FunctionTask",
    "LoopConfig",
    "MedactiveError",
    "Predictions",
    "QueryResult",
    "RoundRecord",
    "SegmentationTask",
    "Strategy",
    "Task",
    "__version__",
    "build_segmentation_task",
    "create_strategy",
    "list_strategies",
    "load_classification_data",
    "load_encoder",
    "load_segmentation_data",
    "model_predictions",
    "pretrain_encoder",
    "register_strategy",
    "run_active_learning",
    "run_experiment",
    "strategy_descriptions",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medactive' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
