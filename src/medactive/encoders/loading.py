"""Loading an encoder by its spec: a ``medactive pretrain`` file or ``timm:NAME``."""

from __future__ import annotations

from pathlib import Path

from medactive.encoders.base import Encoder, backbone_from_record, read_encoder_file
from medactive.encoders.timm_encoder import load_timm_encoder
from medactive.errors import ConfigError


def load_encoder(spec: str, *, weights: str | None = None, in_channels: int) -> Encoder:
    """The encoder named by ``spec``.

    Args:
        spec: a file written by ``medactive pretrain``, or ``"timm:NAME"``.
        weights: for ``timm:NAME``, a local weights file (required; nothing is downloaded).
        in_channels: the data's image channels.

    Raises:
        ConfigError, DataError: unknown spec, missing or mismatched weights (one line).
    """
    if spec.startswith("timm:"):
        return load_timm_encoder(spec[len("timm:"):], weights=weights, in_channels=in_channels)
    if weights is not None:
        raise ConfigError("--encoder-weights is for --encoder timm:NAME; a medactive encoder "
                          "file holds its own weights")
    record = read_encoder_file(spec)
    backbone = backbone_from_record(record, in_channels=in_channels)
    info = {"source": str(Path(spec).resolve()), "pretrain_seconds": record.get("seconds"),
            "architecture": record["architecture"]}
    return Encoder(str(spec), backbone, key=record["key"], quality=record.get("quality"),
                   info=info)
