"""Images of a classification split as torch tensors, as every network here reads them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from medactive.data.pool import Split


def load_images(split: Split, idx: np.ndarray, image_size: int | None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Images ``idx`` of ``split`` as a float tensor ``[n, C, H, W]`` in [0, 1]."""
    if isinstance(split.images, np.ndarray):
        arr = split.images[idx]
    else:
        arr = np.stack([np.asarray(split.images[int(i)]) for i in idx])
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    if arr.dtype == np.uint8:
        x = x / 255.0
    if image_size is not None and tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                          antialias=True)
    return x.to(device)


def normalise_batch(x: torch.Tensor) -> torch.Tensor:
    """Map images in [0, 1] to [-1, 1], the range the networks are trained on."""
    return (x - 0.5) / 0.5


def model_inputs(idx: np.ndarray, *, features: np.ndarray | None, split: Split | None,
                 image_size: int | None, batch_size: int):
    """Yield ``(rows, x)``: blocks of ``batch_size`` of ``idx`` and the model's float32 input
    for them: ``features[rows]`` (a frozen-mode head's embeddings) when ``features`` is given,
    else the split's images at ``image_size``, normalised (a CNN's input)."""
    idx = np.asarray(idx, dtype=np.int64)
    for start in range(0, idx.size, batch_size):
        rows = idx[start:start + batch_size]
        if features is not None:
            yield rows, torch.as_tensor(np.ascontiguousarray(features[rows], dtype=np.float32))
        else:
            yield rows, normalise_batch(load_images(split, rows, image_size))
