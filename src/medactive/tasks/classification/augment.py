"""Batch-level data augmentation on tensors, driven by an explicit ``torch.Generator``.

``"flip"``/``"nct"``: random horizontal flip (the survey's NCT-CRC-HE recipe). ``"isic"``: random
resized crop, horizontal and vertical flip, rotation, affine (scale/shear) and colour jitter
(brightness/contrast/saturation), following Zhuang et al. (2018) as the survey does.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from medactive.errors import ConfigError

AUGMENTATIONS = ("none", "flip", "nct", "isic")


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Augment images ``x`` ``[n, C, H, W]`` (values in [0, 1]) with recipe ``kind``."""
    if kind == "none":
        return x
    if kind in ("flip", "nct"):
        return _hflip(x, generator)
    if kind == "isic":
        return _isic(x, generator)
    raise ConfigError(f"unknown augmentation {kind!r}; choose one of {', '.join(AUGMENTATIONS)}")


def _rand(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator)


def _hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = (_rand(x.shape[0], generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _isic(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = _hflip(x, generator)
    vflip = (_rand(n, generator) < 0.5).to(x.device)
    x = torch.where(vflip[:, None, None, None], x.flip(-2), x)
    angle = (_rand(n, generator) * 2 - 1) * math.pi / 6          # rotation ±30°
    scale = 0.8 + 0.4 * _rand(n, generator)                         # zoom, i.e. resized crop
    shear = (_rand(n, generator) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 0.1   # translation
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin + shear, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    brightness = (0.8 + 0.4 * _rand(n, generator)).to(x)[:, None, None, None]
    contrast = (0.8 + 0.4 * _rand(n, generator)).to(x)[:, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean * brightness
    if x.shape[1] == 3:
        saturation = (0.8 + 0.4 * _rand(n, generator)).to(x)[:, None, None, None]
        gray = x.mean(dim=1, keepdim=True)
        x = (x - gray) * saturation + gray
    return x.clamp(0.0, 1.0)
