"""Encoders: where round models start from, or the fixed features frozen rounds train a head on.

- :func:`load_encoder` — a file written by ``medactive pretrain``, or ``timm:NAME`` with a local
  weights file (never downloaded).
- :func:`pretrain_encoder` — self-supervised (SimCLR, SimSiam) pretraining on the pool, resumable, with
  its kNN / linear-probe quality.
- :func:`cached_embeddings` — a pool's embeddings, computed once per encoder and kept on disk.
"""

from __future__ import annotations

from medactive.encoders.base import (
    Encoder,
    InputAdapter,
    fingerprint_ids,
    read_encoder_file,
    save_encoder_file,
)
from medactive.encoders.cache import cached_embeddings, default_cache_dir
from medactive.encoders.loading import load_encoder
from medactive.encoders.pretrain import MEDICAL_SSL, measure_quality, pretrain_encoder

__all__ = ["MEDICAL_SSL", "Encoder", "InputAdapter", "cached_embeddings", "default_cache_dir",
           "fingerprint_ids", "load_encoder", "measure_quality", "pretrain_encoder",
           "read_encoder_file", "save_encoder_file"]
