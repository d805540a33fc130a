"""Pool embeddings computed once per encoder and kept on disk.

A file ``<cache_dir>/<digest>.npy`` holds ``encoder.embed(split)`` for one encoder (its content
key) and one split (its sample ids, image shape and dtype): the digest changes when either
does, so a stale file is never read. Files are written atomically; a damaged one is recomputed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from medactive.data.pool import Split
from medactive.encoders.base import Encoder, fingerprint_ids, key_digest

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$MEDACTIVE_CACHE/embeddings``, else ``~/.cache/medactive/embeddings``."""
    root = os.environ.get("MEDACTIVE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "medactive"
    return base / "embeddings"


def split_fingerprint(split: Split) -> dict[str, object]:
    """What identifies a split's content for a cache: ids, image shape and dtype."""
    images = split.images
    shape = list(images.shape) if isinstance(images, np.ndarray) else [len(images)]
    dtype = str(images.dtype) if isinstance(images, np.ndarray) else "lazy"
    return {"ids": fingerprint_ids(split.ids), "shape": shape, "dtype": dtype}


def cached_embeddings(encoder: Encoder, split: Split, *, cache_dir: str | Path | None = None,
                      batch_size: int = 512, device: str = "cpu",
                      progress: bool = False) -> np.ndarray:
    """``encoder.embed(split)`` ``[n, d]`` float32, read from or written to the cache."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = key_digest({"encoder": encoder.key, "split": split_fingerprint(split)})
    path = folder / f"{digest}.npy"
    if path.is_file():
        try:
            values = np.load(path, allow_pickle=False)
            if values.shape == (len(split), encoder.out_features):
                logger.info("embeddings of %d samples read from %s", len(split), path)
                return values
        except (OSError, ValueError) as exc:
            logger.warning("%s: unreadable cache (%s); recomputing", path, exc)
    values = encoder.embed(split, batch_size=batch_size, device=device, progress=progress)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{digest}.{os.getpid()}.tmp.npy"
        np.save(tmp, values)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache folder costs time, not correctness
        logger.warning("cannot write the embedding cache %s (%s)", path, exc)
    return values
