"""The active-learning cycle of survey §2 (Eq. 1–4)."""

from __future__ import annotations

from medactive.loop.active_loop import LoopConfig, RoundRecord, initial_indices, run_active_learning
from medactive.loop.pseudo_label import PseudoLabelConfig, select_pseudo_labels

__all__ = ["LoopConfig", "PseudoLabelConfig", "RoundRecord", "initial_indices",
           "run_active_learning", "select_pseudo_labels"]
