"""The active-learning cycle of survey §2 (Eq. 1–4).

- :class:`ActiveLearningCycle` — one experiment as an object: ``fit``, ``evaluate``,
  ``query(budget)`` and ``tell(ids, labels)`` over explicit state (round, ``L_r``, records);
- :func:`run_active_learning` — the cycle run to its last round with an oracle;
- :class:`FunctionTask` — a task made of your own functions (a model of your own);
- :class:`LoopConfig`, :class:`RoundRecord`, :func:`initial_indices`, pseudo-labelling (CEAL).
"""

from __future__ import annotations

from medactive.loop.active_loop import run_active_learning
from medactive.loop.cycle import ActiveLearningCycle
from medactive.loop.pseudo_label import PseudoLabelConfig, select_pseudo_labels
from medactive.loop.records import LoopConfig, RoundRecord, cold_start_indices, initial_indices
from medactive.loop.task import FunctionTask, Task

__all__ = ["ActiveLearningCycle", "FunctionTask", "LoopConfig", "PseudoLabelConfig",
           "RoundRecord", "Task", "cold_start_indices", "initial_indices", "run_active_learning",
           "select_pseudo_labels"]
