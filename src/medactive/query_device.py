"""Where selection and scoring run: ``--selection-device cpu|cuda`` (issue 16 part 4).

``cpu`` (the default) keeps today's numpy path. ``cuda`` moves the pool's embeddings and
probabilities to the GPU as torch tensors just before the query; the query side runs the same
array-API code on them (:mod:`medactive.scoring._arrays`) without importing torch, draws every
random number on the host and copies back only the chosen indices and their scores. This
module is the one place that makes those tensors (application layer: it imports torch).

Example:
    >>> array_device("cpu") is None
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from medactive.errors import ConfigError

SELECTION_DEVICES = ("cpu", "cuda")


def check_selection_device(value: Any, *, name: str = "--selection-device") -> str:
    """``value`` if it is one of :data:`SELECTION_DEVICES`, else one ConfigError line."""
    if value not in SELECTION_DEVICES:
        raise ConfigError(f"{name} must be one of {', '.join(SELECTION_DEVICES)}, got {value!r}")
    return value


def array_device(value: str, *, name: str = "--selection-device",
                 ) -> Callable[[np.ndarray], Any] | None:
    """The :attr:`~medactive.predictions.Predictions.array_device` of ``value``: ``None``
    for ``cpu`` (numpy), a host-to-GPU copy for ``cuda``.

    Raises:
        ConfigError: an unknown value; ``cuda`` without a usable CUDA device.
    """
    if check_selection_device(value, name=name) == "cpu":
        return None
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"{name} cuda: no CUDA device is available "
                          f"(torch.cuda.is_available() is False); use {name} cpu")

    def to_cuda(values: np.ndarray):
        return torch.as_tensor(np.ascontiguousarray(values), device="cuda")

    return to_cuda
