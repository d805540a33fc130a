"""Embeddings of unlabeled then labeled rows, fetched block by block into one array."""

from __future__ import annotations

import numpy as np

from medactive.errors import ConfigError
from medactive.predictions import Predictions
from medactive.selection.facility_location import l2_normalise
from medactive.selection.neighbors import FLOAT16_MAX, resolve_dtype

#: rows fetched per ``predictions.get`` call, so no second full ``[n, d]`` array is held
BLOCK = 65536


def stacked_embeddings(predictions: Predictions, unlabeled_idx: np.ndarray,
                       labeled_idx: np.ndarray, *, embedding_dtype: str = "float32",
                       normalise: bool = False) -> np.ndarray:
    """``[n_u + n_l, d]``: ``"embeddings"`` of ``unlabeled_idx`` then ``labeled_idx``, filled
    block by block (peak memory: this array plus one block), L2-normalised in float32 first
    if ``normalise``, stored as :func:`~medactive.selection.neighbors.resolve_dtype` says for
    ``embedding_dtype`` (``"auto"``, ``"float32"``, ``"float16"``) and the pool size.

    ``"auto"`` falls back to float32 when a value is beyond float16's range (65504).

    Raises:
        ConfigError: ``"float16"`` and a value beyond float16's range.
    """
    idx = np.concatenate([unlabeled_idx, labeled_idx]).astype(np.int64)
    dtype = resolve_dtype(embedding_dtype, idx.size)
    first = np.asarray(predictions.get("embeddings", idx[:1]))
    out = np.empty((idx.size, first.shape[1]), dtype=dtype)
    for start in range(0, idx.size, BLOCK):
        rows = np.asarray(predictions.get("embeddings", idx[start:start + BLOCK]),
                          dtype=np.float32)
        rows = l2_normalise(rows) if normalise else rows
        if dtype == np.float16 and np.abs(rows).max(initial=0.0) > FLOAT16_MAX:
            if embedding_dtype != "auto":
                raise ConfigError(f"embedding_dtype 'float16': embedding values exceed "
                                  f"float16's range ({FLOAT16_MAX:g}); use 'float32'")
            dtype, out = np.dtype(np.float32), out.astype(np.float32)
        out[start:start + BLOCK] = rows
    return out


def stacked_unit_embeddings(predictions: Predictions, unlabeled_idx: np.ndarray,
                            labeled_idx: np.ndarray, embedding_dtype: str = "float32",
                            ) -> np.ndarray:
    """:func:`stacked_embeddings`, L2-normalised (float32 by default)."""
    return stacked_embeddings(predictions, unlabeled_idx, labeled_idx,
                              embedding_dtype=embedding_dtype, normalise=True)
