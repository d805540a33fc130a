"""Training recipes (presets) and the classification train / predict functions."""

from __future__ import annotations

from medactive.training.presets import TrainConfig, get_preset, list_presets

__all__ = ["TrainConfig", "get_preset", "list_presets"]
