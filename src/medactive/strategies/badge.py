"""BADGE: k-means++ seeding on last-layer gradient embeddings.

For a sample with softmax output ``p`` ``[c]``, penultimate features ``h`` ``[d]`` and predicted
label ``y_hat`` used as pseudo-label, the gradient of the cross-entropy w.r.t. the last linear
layer's weight is ``(p - e_{y_hat}) ⊗ h`` ``[c, d]``. Its norm grows with uncertainty and its
direction encodes what the sample would teach, so D² seeding picks a batch that is both
uncertain and diverse. The ``[n, c*d]`` matrix is never built:
:meth:`~medactive.predictions.Predictions.gradient_embedding` returns a
:class:`~medactive.selection.embedding.FactorisedEmbedding` whose distances come from the two
factors (segmentation tasks may return a dense embedding instead).

For very large pools (see docs/PERFORMANCE.md, "Fewer bytes and fewer passes"):
``embedding_dtype`` holds the features in 16 bits (half the bytes per pass), ``lazy_updates``
applies new seeds to the pool every few picks in one matrix product (same D² law), and
``seeding="kmeans||"`` replaces k-means++ by k-means‖ (an approximation, fewer passes).

References:
    Ash et al., "Deep batch active learning by diverse, uncertain gradient lower bounds",
    ICLR 2020.
"""

from __future__ import annotations

import numpy as np

from medactive.errors import ConfigError
from medactive.predictions import FieldRows, Predictions
from medactive.selection.embedding import (
    EMBEDDING_DTYPES,
    HALF_PRECISION_FROM,
    DenseEmbedding,
    Embedding,
    FactorisedEmbedding,
    HalfMatrix,
    resolve_dtype,
)
from medactive.selection.kmeans_parallel import kmeans_parallel
from medactive.selection.kmeanspp import kmeans_plusplus

SEEDINGS = ("kmeans++", "kmeans||")
#: ``lazy_updates="auto"``: this many picks per pool update from HALF_PRECISION_FROM rows on
AUTO_LAZY_UPDATES = 32
from medactive.strategies.base import QueryResult, Strategy, register_strategy


@register_strategy
class BADGE(Strategy):
    """k-means++ on gradient embeddings ``(p - e_{y_hat}) ⊗ h``.

    Args:
        first: first seed, ``"max_norm"`` (largest gradient, BADGE's reference code) or
            ``"random"``.
        n_local_trials: candidates per k-means++ step (1 = plain D² sampling, as in BADGE).
        embedding_dtype: storage of the features during selection, ``"float32"``,
            ``"float16"``, ``"bfloat16"`` (16 bits, products accumulated in float32) or
            ``"auto"`` (float32 below ``HALF_PRECISION_FROM`` = 250,000 unlabeled samples,
            bfloat16 from there on).
        seeding: ``"kmeans++"`` (exact D² sampling, BADGE) or ``"kmeans||"`` (k-means‖ of
            Bahmani et al. 2012: ``1 + rounds`` passes, then a weighted reduction; an
            approximation, see :mod:`medactive.selection.kmeans_parallel`).
        lazy_updates: k-means++ only: apply new seeds to the pool every this many picks, one
            matrix product each, with rejection sampling between (the same D² law, another
            random stream); ``"auto"`` = 1 below 250,000 unlabeled samples (today's picks),
            32 from there on. Needs ``n_local_trials == 1`` when above 1.
        oversampling, rounds: k-means‖ only: expected candidates per round over the budget,
            and the number of oversampling passes.

    The query's scores are each pick's squared distance to the nearest earlier pick when it
    was chosen (the first pick: its squared gradient norm).
    """

    name = "badge"
    description = ("k-means++ seeding on last-layer gradient embeddings with the predicted "
                   "label as pseudo-label (uncertain and diverse).")
    requires = ("probas", "embeddings")

    def __init__(self, first: str = "max_norm", n_local_trials: int = 1,
                 embedding_dtype: str = "auto", seeding: str = "kmeans++",
                 lazy_updates: int | str = "auto", oversampling: float = 0.5,
                 rounds: int = 5) -> None:
        if first not in ("max_norm", "random"):
            raise ConfigError(f"badge: first must be 'max_norm' or 'random', got {first!r}")
        if not _positive_int(n_local_trials):
            raise ConfigError(f"badge: n_local_trials must be an integer >= 1, got "
                              f"{n_local_trials!r}")
        if embedding_dtype not in EMBEDDING_DTYPES:
            raise ConfigError(f"badge: embedding_dtype must be one of "
                              f"{', '.join(EMBEDDING_DTYPES)}, got {embedding_dtype!r}")
        if seeding not in SEEDINGS:
            raise ConfigError(f"badge: seeding must be one of {', '.join(SEEDINGS)}, got "
                              f"{seeding!r}")
        if lazy_updates != "auto" and not _positive_int(lazy_updates):
            raise ConfigError(f"badge: lazy_updates must be 'auto' or an integer >= 1, got "
                              f"{lazy_updates!r}")
        if lazy_updates not in ("auto", 1) and n_local_trials != 1:
            raise ConfigError("badge: lazy_updates > 1 needs n_local_trials = 1")
        if isinstance(oversampling, bool) or not isinstance(oversampling, (int, float)) \
                or not oversampling > 0:
            raise ConfigError(f"badge: oversampling must be a positive number, got "
                              f"{oversampling!r}")
        if not _positive_int(rounds):
            raise ConfigError(f"badge: rounds must be an integer >= 1, got {rounds!r}")
        self.first = first
        self.n_local_trials = int(n_local_trials)
        self.embedding_dtype, self.seeding = embedding_dtype, seeding
        self.lazy_updates = lazy_updates if lazy_updates == "auto" else int(lazy_updates)
        self.oversampling, self.rounds = float(oversampling), int(rounds)

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        n = unlabeled_idx.size
        embedding = gradient_embedding(predictions, unlabeled_idx,
                                       resolve_dtype(self.embedding_dtype, n))
        if self.seeding == "kmeans||":
            positions, sq_dists = kmeans_parallel(embedding, budget, rng=rng, first=self.first,
                                                  oversampling=self.oversampling,
                                                  rounds=self.rounds)
        else:
            lazy = self.lazy_updates
            if lazy == "auto":
                large = n >= HALF_PRECISION_FROM and self.n_local_trials == 1
                lazy = AUTO_LAZY_UPDATES if large else 1
            positions, sq_dists = kmeans_plusplus(embedding, budget, rng=rng, first=self.first,
                                                  n_local_trials=self.n_local_trials,
                                                  lazy_updates=lazy)
        return QueryResult(unlabeled_idx[positions], sq_dists)

    def __repr__(self) -> str:
        return (f"BADGE(first={self.first!r}, n_local_trials={self.n_local_trials}, "
                f"embedding_dtype={self.embedding_dtype!r}, seeding={self.seeding!r}, "
                f"lazy_updates={self.lazy_updates!r})")


def gradient_embedding(predictions: Predictions, idx: np.ndarray, dtype: str) -> Embedding:
    """BADGE's embedding of ``idx`` with its ``[n, d]`` matrix stored as ``dtype``.

    On a selection device (:attr:`~medactive.predictions.Predictions.array_device`, e.g.
    CUDA) the factors are moved there in float32 (``dtype`` is the host's storage only).
    float32: :meth:`~medactive.predictions.Predictions.gradient_embedding` as it is. 16 bits:
    the features are fetched and rounded block by block (no float32 copy of the pool's
    features is made); a task's own gradient embedding (segmentation) is rounded after.
    """
    if predictions.array_device is not None:  # --selection-device: float32 factors there
        emb = predictions.gradient_embedding(idx)
        move = predictions.to_selection
        if isinstance(emb, FactorisedEmbedding):
            return FactorisedEmbedding(move(emb.a), move(np.asarray(emb.h, dtype=np.float32)))
        return DenseEmbedding(move(np.asarray(emb.to_dense(), dtype=np.float32)))
    if dtype == "float32":
        return predictions.gradient_embedding(idx)
    if type(predictions).gradient_embedding is not Predictions.gradient_embedding:
        emb = predictions.gradient_embedding(idx)
        if isinstance(emb, FactorisedEmbedding):
            return FactorisedEmbedding(emb.a, HalfMatrix.encode(emb.h, dtype))
        return DenseEmbedding(HalfMatrix.encode(emb.to_dense(), dtype))
    a = predictions.get("probas", idx).astype(np.float64, copy=True)
    a[np.arange(a.shape[0]), a.argmax(axis=1)] -= 1.0
    return FactorisedEmbedding(a, HalfMatrix.encode(FieldRows(predictions, "embeddings", idx),
                                                    dtype))


def _positive_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1
