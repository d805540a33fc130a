"""A CPU tensor that behaves like a CUDA one towards numpy, for the torch-backend tests of
selection and scoring (issue 16 part 4): the machine has no GPU, so a kernel that silently
falls back to numpy (``np.asarray``) must fail here as it would on the device."""

from __future__ import annotations

import numpy as np
import torch


class DeviceTensor(torch.Tensor):
    """A CPU tensor numpy cannot read implicitly, as a CUDA tensor."""

    def __array__(self, *args, **kwargs):
        raise TypeError("can't convert a device tensor to numpy implicitly")


def on_device(x: np.ndarray) -> torch.Tensor:
    """``x`` as a :class:`DeviceTensor` (same dtype, shared memory)."""
    return torch.as_tensor(x).as_subclass(DeviceTensor)
