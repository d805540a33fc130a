"""Model outputs handed to strategies.

A strategy never sees a model: the loop gives it a :class:`Predictions` object that computes
(and caches) what the strategy asks for, for the pool-absolute indices it asks about. Fields:

- ``"probas"``: class probabilities ``[n, c]`` (segmentation: ``[n, c, H, W]``).
- ``"mc_probas"``: MC-dropout probabilities ``[n, c, t]`` (segmentation ``[n, c, H, W, t]``);
  the last axis holds the ``t`` stochastic passes.
- ``"embeddings"``: penultimate features ``[n, d]``.
- ``"dal_unlabeled"``, ``"vaal_unlabeled"``: ``[n]`` in [0, 1], the probability a
  labeled-vs-unlabeled discriminator (DAL's on the embeddings, VAAL's on a VAE latent) gives to
  "unlabeled"; the task trains the discriminator for the labeled set it is given
  (:mod:`medactive.tasks.discrepancy`).
- ``"member_probas"``: ``[n, c, m]`` class probabilities of the ``m`` members of a deep ensemble
  (or committee) the task trained for the round (segmentation ``[n, c, H, W, m]``).
- ``"tta_probas"``: ``[n, c, t]`` probabilities on ``t`` random test-time augmentations of each
  input (segmentation ``[n, c, H, W, t]``, each map mapped back to the original frame).
- ``"dirichlet_alpha"``: ``[n, c]`` Dirichlet parameters of an evidential head (all > 0).
- ``"predicted_loss"``: ``[n]`` the loss a learning-loss module predicts for each sample.
- ``"dfal_distance"``: ``[n]`` the norm of the DeepFool perturbation that changes the prediction.

Per-sample scores of dense fields go through :meth:`Predictions.score`, which a segmentation
implementation overrides to reduce pixel scores per slice while streaming, so a full
``[n, c, H, W, t]`` stack never has to exist. BADGE's gradient embedding comes from
:meth:`Predictions.gradient_embedding` as a :class:`~medactive.selection.embedding.Embedding`
(factorised for classification; dense for segmentation).

Example:
    >>> import numpy as np
    >>> p = ArrayPredictions(probas=np.array([[0.9, 0.1], [0.5, 0.5]]))
    >>> p.get("probas", np.array([1]))
    array([[0.5, 0.5]])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: per-sample scores computed by networks the task trains beside the model (one value a sample)
SCORE_FIELDS = ("dal_unlabeled", "vaal_unlabeled", "predicted_loss", "dfal_distance")
#: stacks ``[n, c, ..., k]`` whose last axis holds ``k`` predictions of one sample (MC passes,
#: ensemble members, test-time augmentations)
STACK_FIELDS = ("mc_probas", "member_probas", "tta_probas")
#: fields holding probabilities over the class axis 1 (renormalised after a float16 cache)
PROBA_FIELDS = ("probas", *STACK_FIELDS)
FIELDS = ("probas", "mc_probas", "embeddings", "member_probas", "tta_probas", "dirichlet_alpha",
          *SCORE_FIELDS)


class Predictions:
    """Lazily computed model outputs over a pool, indexed by pool-absolute indices."""

    #: the number of MC-dropout passes behind ``"mc_probas"``
    n_mc_samples: int = 25
    #: the number of test-time augmentations behind ``"tta_probas"`` (settable, like
    #: ``n_mc_samples``: a strategy's ``n_augmentations`` option, routed by the cycle)
    n_augmentations: int = 8
    #: where selection and scoring run (``--selection-device``): ``None`` = numpy on the host;
    #: else a callable moving a host array to the backend (e.g. a torch tensor on CUDA), set by
    #: the application (:mod:`medactive.query_device`), never by the query side
    array_device: Callable[[np.ndarray], object] | None = None

    def to_selection(self, values: np.ndarray):
        """``values`` on the selection backend (:attr:`array_device`; unchanged if ``None``)."""
        return values if self.array_device is None else self.array_device(values)

    def get(self, field: str, idx: np.ndarray) -> np.ndarray:
        """Rows of ``field`` for the pool-absolute indices ``idx`` (in that order)."""
        raise NotImplementedError

    #: target size in bytes of one block of rows in :meth:`score` (bounds memory for big pools
    #: and segmentation stacks; the scoring functions make a few float64 temporaries of it, so
    #: the added peak is several times this: 8 MB keeps BALD at 9e4 x 9 x 25 below baal's, and
    #: blocks of this size stay in cache)
    score_block_bytes: int = 2 * 2**20

    def score(self, fn: Callable[[np.ndarray], np.ndarray], field: str, idx: np.ndarray,
              ) -> np.ndarray:
        """Per-sample scores ``[n]`` of ``fn`` applied to ``field`` rows of ``idx``.

        ``fn`` maps ``[n, c, ...]`` to ``[n, ...]`` (a scoring function from
        :mod:`medactive.scoring`); any trailing dimensions (pixels) are averaged here. Rows
        are fetched and scored in blocks of about :attr:`score_block_bytes`, so a full
        ``[n, c, H, W, t]`` stack never has to be in memory at once.
        """
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty(idx.size, dtype=np.float64)
        start, block = 0, 16  # the first block measures the row size
        # a device pays per copy, not per byte: 64x larger blocks there (128 MB by default)
        block_bytes = self.score_block_bytes * (1 if self.array_device is None else 64)
        while start < idx.size:
            rows = self.get(field, idx[start:start + block])
            if self.array_device is None:
                values = np.asarray(fn(rows), dtype=np.float64)
            else:  # scored on the device, only the [block] scores come back
                from medactive.scoring._arrays import to_host

                values = np.asarray(to_host(fn(self.array_device(rows))), dtype=np.float64)
            if values.ndim > 1:
                values = values.reshape(values.shape[0], -1).mean(axis=1)
            out[start:start + values.shape[0]] = values
            start += values.shape[0]
            row_bytes = max(1, rows.nbytes // max(1, rows.shape[0]))
            block = max(1, block_bytes // row_bytes)
        return out

    def gradient_embedding(self, idx: np.ndarray):
        """BADGE's last-layer gradient embedding for ``idx`` (an ``Embedding``).

        Classification: with ``p`` the softmax output and ``h`` the penultimate features, the
        gradient of the cross-entropy at the predicted label ``y_hat`` w.r.t. the last linear
        layer is ``(p - e_{y_hat}) ⊗ h``; it is returned factorised, never materialised.
        """
        from medactive.selection.embedding import FactorisedEmbedding

        probas = self.get("probas", idx)
        feats = self.get("embeddings", idx)
        a = probas.astype(np.float64, copy=True)
        a[np.arange(a.shape[0]), a.argmax(axis=1)] -= 1.0
        return FactorisedEmbedding(a, feats)


class FieldRows:
    """A lazy ``[len(idx), ...]`` view of one field: rows are fetched when indexed.

    Lets a selection function that reads only some rows (the top-scored candidates of a
    diversity sampler) take "the unlabeled pool's embeddings" without the pool's copy.

    Example:
        >>> rows = FieldRows(ArrayPredictions(probas=np.eye(3)), "probas", np.array([2, 0]))
        >>> rows.shape[0], rows[np.array([1])].tolist()
        (2, [[1.0, 0.0, 0.0]])
    """

    def __init__(self, predictions: Predictions, field: str, idx: np.ndarray) -> None:
        self.predictions, self.field = predictions, field
        self.idx = np.asarray(idx, dtype=np.int64)
        self.shape = (self.idx.size,)

    def __len__(self) -> int:
        return self.idx.size

    def __getitem__(self, positions) -> np.ndarray:
        return self.predictions.get(self.field, self.idx[positions])


class ArrayPredictions(Predictions):
    """Predictions held in full-pool arrays (tests, cached results, precomputed outputs).

    Args:
        probas: ``[n_pool, c]`` or ``None``.
        mc_probas: ``[n_pool, c, t]`` or ``None``.
        embeddings: ``[n_pool, d]`` or ``None``.
        **fields: any other field of :data:`FIELDS` by name (``member_probas=...``,
            ``dal_unlabeled=...``), full-pool arrays.

    Raises:
        TypeError: a keyword that is not a field name.
    """

    def __init__(self, *, probas: np.ndarray | None = None, mc_probas: np.ndarray | None = None,
                 embeddings: np.ndarray | None = None, **fields: np.ndarray | None) -> None:
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise TypeError(f"unknown prediction field(s) {', '.join(unknown)}; known: "
                            f"{', '.join(FIELDS)}")
        self._fields = {name: None for name in FIELDS}
        self._fields.update(probas=probas, mc_probas=mc_probas, embeddings=embeddings, **fields)
        if mc_probas is not None:
            self.n_mc_samples = int(np.shape(mc_probas)[-1])
        if fields.get("tta_probas") is not None:
            self.n_augmentations = int(np.shape(fields["tta_probas"])[-1])

    def get(self, field: str, idx: np.ndarray) -> np.ndarray:
        if field not in self._fields:
            raise KeyError(f"unknown prediction field {field!r}; known: {', '.join(FIELDS)}")
        values = self._fields[field]
        if values is None:
            raise ValueError(f"these predictions have no {field!r}")
        return np.asarray(values)[np.asarray(idx, dtype=np.int64)]


class CachedPredictions(Predictions):
    """Predictions computed by callables on first use and cached per field for the whole pool.

    Args:
        n_pool: number of samples in the pool.
        providers: ``field -> fn(idx) -> array`` computing rows for pool-absolute ``idx``.
        n_mc_samples: MC-dropout passes behind ``"mc_probas"``.
        chunk_size: call each provider on at most this many rows at a time (``None``: all
            missing rows in one call), so batched inference streams over a large pool.
        cache_dir: keep each field in ``cache_dir/<field>.npy``, a memory-mapped file, instead
            of RAM (pools of 10^5–10^6 samples). The folder is created; files are overwritten,
            so give each round (model) its own folder.
        dtype: storage dtype, e.g. ``"float16"`` to halve the cache. Float16 fields are
            returned as float32; probabilities are renormalised over the class axis on read so
            that they still sum to 1.

    Rows are computed only for requested indices; a later request for other indices computes
    only the missing ones. Several strategies in one round thus share one inference pass.
    """

    def __init__(self, n_pool: int, providers: dict[str, Callable[[np.ndarray], np.ndarray]],
                 *, n_mc_samples: int = 25, chunk_size: int | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 dtype: str | np.dtype | None = None) -> None:
        self.n_pool = int(n_pool)
        self.providers = providers
        self.n_mc_samples = n_mc_samples
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.chunk_size = chunk_size
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.dtype = None if dtype is None else np.dtype(dtype)
        self._cache: dict[str, np.ndarray] = {}
        self._have: dict[str, np.ndarray] = {}

    def get(self, field: str, idx: np.ndarray) -> np.ndarray:
        if field not in self.providers:
            raise KeyError(f"no provider for prediction field {field!r}; "
                           f"available: {', '.join(sorted(self.providers))}")
        idx = np.asarray(idx, dtype=np.int64)
        have = self._have.setdefault(field, np.zeros(self.n_pool, dtype=bool))
        missing = np.unique(idx[~have[idx]])
        step = self.chunk_size or max(1, missing.size)
        for start in range(0, missing.size, step):
            chunk = missing[start:start + step]
            rows = np.asarray(self.providers[field](chunk))
            if rows.shape[0] != chunk.size:
                raise ValueError(f"provider of {field!r} returned {rows.shape[0]} rows for "
                                 f"{chunk.size} indices")
            if field not in self._cache:
                self._cache[field] = self._allocate(field, rows)
            self._cache[field][chunk] = rows
            have[chunk] = True
        values = self._cache[field][idx]
        if values.dtype == np.float16:
            values = values.astype(np.float32)
            if field in PROBA_FIELDS:
                values /= values.sum(axis=1, keepdims=True)
        return values

    def _allocate(self, field: str, rows: np.ndarray) -> np.ndarray:
        dtype = rows.dtype
        if self.dtype is not None and np.issubdtype(dtype, np.floating):
            dtype = self.dtype
        shape = (self.n_pool, *rows.shape[1:])
        if self.cache_dir is None:
            return np.zeros(shape, dtype=dtype)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{field}.npy"
        logger.debug("caching %s %s %s in %s", field, shape, dtype, path)
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
