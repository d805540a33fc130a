"""The active-learning cycle of survey §2 (Eq. 1–4)."""

from __future__ import annotations

from medactive.loop.active_loop import LoopConfig, RoundRecord, initial_indices, run_active_learning

__all__ = ["LoopConfig", "RoundRecord", "initial_indices", "run_active_learning"]
