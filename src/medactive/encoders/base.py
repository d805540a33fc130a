"""Encoders: fixed feature extractors that round models start from, or that frozen rounds use.

An :class:`Encoder` wraps a backbone module with the contract of
:attr:`medactive.tasks.classification.model.Classifier.backbone`: it maps medactive-normalised
images ``[n, C, H, W]`` (``(x - 0.5) / 0.5`` of ``[0, 1]`` images, the data's channels and
size) to features ``[n, d]``. Whatever an external network needs besides (a fixed input size,
three channels, ImageNet normalisation) happens inside it (:class:`InputAdapter`), so an encoder
plugs into the classifier, its training loop and its predictions unchanged.

Two sources (survey §4.2, §7.5):

- a file written by ``medactive pretrain`` (self-supervised on the pool): format
  ``medactive-encoder`` version 1, a dict with ``key`` (method, settings, seed, model, pool
  fingerprint), ``architecture`` (how to rebuild the backbone), ``state`` (its weights),
  ``quality`` (kNN and linear-probe accuracy) and ``seconds`` (pretraining time);
- ``timm:NAME`` with a local weights file (:mod:`medactive.encoders.timm_encoder`): never
  downloaded.

Example:
    >>> import torch
    >>> adapter = InputAdapter(in_channels=1, out_channels=3, image_size=8,
    ...                        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    >>> adapter(torch.zeros(2, 1, 4, 4)).shape
    torch.Size([2, 3, 8, 8])
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medactive.data.pool import Split
from medactive.errors import ConfigError, DataError

FORMAT = "medactive-encoder"
VERSION = 1


def fingerprint_ids(ids: Sequence[str] | np.ndarray) -> str:
    """A short hash of sample ids (order included): the data part of a cache or content key."""
    digest = hashlib.sha1()
    for sid in ids:
        digest.update(str(sid).encode("utf-8") + b"\0")
    return f"{len(ids)}:{digest.hexdigest()[:16]}"


def key_digest(key: dict[str, Any]) -> str:
    """A stable hex digest of a JSON-serialisable key."""
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


class InputAdapter(nn.Module):
    """Turns medactive-normalised images into what an external network expects.

    Undoes ``(x - 0.5) / 0.5``, matches channels (grey repeated to 3, RGB averaged to 1),
    resizes to ``image_size`` (bilinear, antialiased) and applies ``(x - mean) / std``.
    """

    def __init__(self, *, in_channels: int, out_channels: int, image_size: int | None,
                 mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != out_channels or len(std) != out_channels:
            raise ConfigError(f"normalisation mean/std need {out_channels} values, got "
                              f"{list(mean)} / {list(std)}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 0.5 + 0.5
        if x.shape[1] != self.out_channels:
            if x.shape[1] == 1:
                x = x.expand(-1, self.out_channels, -1, -1)
            elif self.out_channels == 1:
                x = x.mean(dim=1, keepdim=True)
            else:
                raise ConfigError(f"cannot feed {x.shape[1]}-channel images to an encoder "
                                  f"with {self.out_channels} input channels")
        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size,) * 2:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True)
        return (x - self.mean) / self.std


class AdaptedBackbone(nn.Module):
    """``adapter -> network``, exposing ``out_features`` like a medactive backbone."""

    def __init__(self, adapter: nn.Module, network: nn.Module, out_features: int) -> None:
        super().__init__()
        self.adapter = adapter
        self.network = network
        self.out_features = int(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.network(self.adapter(x))
        return torch.flatten(h, 1)


class Encoder:
    """A fixed feature extractor with a content key.

    Args:
        name: the spec it was loaded from (a file path or ``"timm:NAME"``).
        backbone: medactive-normalised ``[n, C, H, W]`` -> ``[n, d]`` (eval mode when
            embedding).
        key: JSON-serialisable content key (weights and architecture), for caches.
        quality: kNN / linear-probe figures stored with it, or ``None``.
        info: anything else worth recording in run.json (pretraining time, source file).
    """

    def __init__(self, name: str, backbone: nn.Module, *, key: dict[str, Any],
                 quality: dict[str, Any] | None = None, info: dict[str, Any] | None = None,
                 ) -> None:
        self.name = name
        self.backbone = backbone.eval()
        self.out_features = int(backbone.out_features)
        self.key = key
        self.quality = quality
        self.info = dict(info or {})

    def fresh_backbone(self) -> nn.Module:
        """A trainable deep copy of the backbone (fine-tuning starts from it)."""
        return copy.deepcopy(self.backbone).train()

    @torch.no_grad()
    def embed(self, split: Split, idx: np.ndarray | None = None, *, batch_size: int = 512,
              device: str = "cpu", progress: bool = False) -> np.ndarray:
        """Features ``[n, d]`` (float32) of ``split`` rows ``idx`` (default all)."""
        from medactive.data.tensors import load_images, normalise_batch
        from medactive.progress import progress_bar

        idx = np.arange(len(split), dtype=np.int64) if idx is None else np.asarray(idx, np.int64)
        net = self.backbone.to(device).eval()
        out = np.empty((idx.size, self.out_features), dtype=np.float32)
        bar = progress_bar(idx.size, desc=f"embedding ({self.name})", unit="image",
                           enabled=progress)
        try:
            for start in range(0, idx.size, batch_size):
                rows = idx[start:start + batch_size]
                x = normalise_batch(load_images(split, rows, None)).to(device)
                h = net(x).float().cpu().numpy()
                if not np.all(np.isfinite(h)):
                    raise DataError(f"encoder {self.name}: non-finite features for sample "
                                    f"{split.ids[rows[np.flatnonzero(~np.isfinite(h).all(1))[0]]]!r}")
                out[start:start + rows.size] = h
                bar.update(rows.size)
        finally:
            bar.close()
            net.to("cpu")
        return out

    def describe(self) -> dict[str, Any]:
        """What run.json records of this encoder."""
        return {"name": self.name, "out_features": self.out_features, "key": self.key,
                "quality": self.quality, **self.info}


# -- medactive encoder files ------------------------------------------------------------------
def save_encoder_file(path: str | Path, record: dict[str, Any]) -> Path:
    """Write an encoder record atomically (``key``, ``architecture``, ``state``, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "version": VERSION, **record}, tmp)
    os.replace(tmp, path)
    return path


def read_encoder_file(path: str | Path) -> dict[str, Any]:
    """The record of a file written by ``medactive pretrain``.

    Raises:
        DataError: the file is missing, unreadable or not a medactive encoder.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: encoder file not found")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DataError(f"{path}: not a readable encoder file ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DataError(f"{path}: not a medactive encoder file (write one with "
                        "`medactive pretrain`, or use --encoder timm:NAME --encoder-weights FILE)")
    if record.get("version") != VERSION:
        raise DataError(f"{path}: encoder file version {record.get('version')!r}; this "
                        f"medactive reads version {VERSION}")
    for field in ("key", "architecture", "state"):
        if field not in record:
            raise DataError(f"{path}: encoder file has no {field!r}")
    return record


def backbone_from_record(record: dict[str, Any], *, in_channels: int) -> nn.Module:
    """Rebuild and load the backbone a medactive encoder record describes."""
    from medactive.encoders.backbones import build_backbone

    arch = record["architecture"]
    if int(arch["in_channels"]) != in_channels:
        raise ConfigError(f"the encoder was pretrained on {arch['in_channels']}-channel images; "
                          f"this data has {in_channels} channel(s)")
    backbone = build_backbone(arch["model"], in_channels=in_channels, width=arch.get("width"))
    try:
        backbone.load_state_dict(record["state"])
    except RuntimeError as exc:
        raise DataError(f"encoder weights do not fit {arch['model']} (width "
                        f"{arch.get('width')}): {str(exc).splitlines()[0]}") from None
    return backbone
