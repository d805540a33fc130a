"""Unit-norm embeddings of unlabeled then labeled rows, fetched block by block."""

from __future__ import annotations

import numpy as np

from medactive.predictions import Predictions
from medactive.selection.facility_location import l2_normalise

#: rows fetched per ``predictions.get`` call, so no second full ``[n, d]`` array is held
BLOCK = 65536


def stacked_unit_embeddings(predictions: Predictions, unlabeled_idx: np.ndarray,
                            labeled_idx: np.ndarray) -> np.ndarray:
    """``[n_u + n_l, d]`` float32: L2-normalised ``"embeddings"`` of ``unlabeled_idx`` then
    ``labeled_idx``, filled block by block (peak memory: this array plus one block)."""
    idx = np.concatenate([unlabeled_idx, labeled_idx]).astype(np.int64)
    first = np.asarray(predictions.get("embeddings", idx[:1]))
    out = np.empty((idx.size, first.shape[1]), dtype=np.float32)
    for start in range(0, idx.size, BLOCK):
        rows = predictions.get("embeddings", idx[start:start + BLOCK])
        out[start:start + BLOCK] = l2_normalise(rows)
    return out
