"""Image classification as an active-learning task.

Wraps a :class:`~medactive.data.pool.Dataset` and a :class:`~medactive.training.TrainConfig`:
``fit`` trains a classifier and keeps the best validation checkpoint, ``evaluate`` reports
accuracy / balanced accuracy / AUC / per-class recall, ``predictions`` hands strategies lazy,
cached model outputs over the pool (one inference pass shared by probabilities and embeddings).
``pretrain`` (optional) SimCLR-pretrains the backbone on the pool without labels; every model
``fit`` builds from scratch then starts from it, and ``ssl_predictions`` holds its embeddings for
a cold-start choice of the initial set (survey §4.2).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medactive.data.pool import Dataset
from medactive.errors import ConfigError
from medactive.metrics.classification import classification_metrics
from medactive.predictions import ArrayPredictions, CachedPredictions
from medactive.training.classification import fit_classifier, predict, predict_mc
from medactive.training.presets import TrainConfig
from medactive.training.self_supervised import SSLConfig, backbone_embeddings, pretrain_simclr

logger = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA GPU is visible")
    return device


class ClassificationTask:
    """The classification task of the AL loop.

    Args:
        dataset: train (pool), val and test splits with labels.
        config: training recipe.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        progress: show training progress bars.
        chunk_size: pool inference runs over at most this many images at a time.
        cache_dir: keep each round's pool outputs in memory-mapped files here (large pools);
            ``None`` keeps them in memory.
        cache_dtype: storage dtype of that cache, e.g. ``"float16"`` to halve it.
    """

    kind = "classification"
    #: ``fit`` trains on pseudo-labelled samples too (``extra_idx`` / ``extra_labels``, CEAL)
    supports_pseudo_labels = True

    def __init__(self, dataset: Dataset, config: TrainConfig, *, device: str = "cpu",
                 progress: bool = False, chunk_size: int | None = 65536,
                 cache_dir: str | None = None, cache_dtype: str | None = None) -> None:
        if dataset.train.labels is None:
            raise ConfigError(f"{dataset.source or dataset.name}: the pool has no labels; a "
                              "simulated run needs ground truth (use a project for real labelling)")
        dataset.check_labels()
        self.dataset = dataset
        self.config = config
        self.device = resolve_device(device)
        self.progress = progress
        self.chunk_size, self.cache_dir, self.cache_dtype = chunk_size, cache_dir, cache_dtype
        self._round = 0
        self.pool_ids = dataset.train.ids
        self.primary_metric = "auc" if dataset.n_classes == 2 else "accuracy"
        self._val_idx = np.arange(len(dataset.val))
        self._test_idx = np.arange(len(dataset.test))
        #: backbone state dict of the self-supervised pretraining (``None``: not pretrained)
        self.pretrained_state: dict[str, torch.Tensor] | None = None
        self.ssl_key: dict[str, Any] | None = None
        self.ssl_seconds = 0.0
        self._ssl_embeddings: np.ndarray | None = None

    def pretrain(self, ssl: SSLConfig, *, seed: int, cache_path: str | Path | None = None,
                 ) -> dict[str, torch.Tensor]:
        """Self-supervised pretraining of the backbone on the whole pool, without labels.

        From then on, ``fit`` without ``init_model`` starts every model's backbone from these
        weights (survey §4.2.2, pretrain then fine-tune). Deterministic in ``seed``.

        Args:
            ssl: pretraining settings.
            seed: seeds the pretraining.
            cache_path: a ``.pt`` file: reused when it holds weights of the same settings,
                seed, model and pool (its content key), else (re)written.

        Returns:
            The backbone's state dict (also kept as :attr:`pretrained_state`).
        """
        cfg = self.config
        key = {"ssl": ssl.to_dict(), "seed": int(seed), "model": cfg.model, "width": cfg.width,
               "image_size": cfg.image_size, "in_channels": self.dataset.in_channels,
               "pool": _pool_fingerprint(self.pool_ids)}
        state = None
        if cache_path is not None and Path(cache_path).is_file():
            try:
                saved = torch.load(cache_path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - a broken cache is recomputed
                logger.warning("%s: unreadable (%s); pretraining again", cache_path, exc)
                saved = {}
            if saved.get("key") == key:
                state = saved["state"]
                self.ssl_seconds = float(saved.get("seconds", 0.0))
                logger.info("self-supervised weights reused from %s", cache_path)
            else:
                logger.info("%s holds other pretraining settings; pretraining again",
                            cache_path)
        if state is None:
            start = time.perf_counter()
            state = pretrain_simclr(self.dataset.train, config=ssl, model=cfg.model,
                                    in_channels=self.dataset.in_channels, width=cfg.width,
                                    image_size=cfg.image_size, seed=seed, device=self.device,
                                    progress=self.progress)
            self.ssl_seconds = time.perf_counter() - start
            logger.info("SimCLR pretraining: %d epochs in %.1fs", ssl.epochs, self.ssl_seconds)
            if cache_path is not None:
                path = Path(cache_path)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(path.suffix + ".tmp")
                torch.save({"key": key, "state": state, "seconds": self.ssl_seconds}, tmp)
                os.replace(tmp, path)
        self.pretrained_state, self.ssl_key, self._ssl_embeddings = state, key, None
        return state

    def ssl_predictions(self) -> ArrayPredictions | None:
        """The pretrained backbone's L2-normalised pool embeddings ``[n_pool, d]`` as
        predictions (field ``"embeddings"``), for a cold-start initial set; ``None`` when the
        task is not pretrained."""
        if self.pretrained_state is None:
            return None
        if self._ssl_embeddings is None:
            cfg = self.config
            self._ssl_embeddings = backbone_embeddings(
                self.pretrained_state, self.dataset.train, model=cfg.model,
                in_channels=self.dataset.in_channels, width=cfg.width,
                image_size=cfg.image_size, batch_size=cfg.inference_batch_size,
                device=self.device)
        return ArrayPredictions(embeddings=self._ssl_embeddings)

    def pool_labels(self, idx: np.ndarray) -> list[int]:
        return [int(v) for v in self.dataset.train.labels[np.asarray(idx, dtype=np.int64)]]

    def fit(self, labeled_idx: np.ndarray, labels: list[Any], *, seed: int,
            init_model: Any | None = None, extra_idx: np.ndarray | None = None,
            extra_labels: np.ndarray | None = None):
        """Train on ``labeled_idx`` with ``labels``, plus pseudo-labelled ``extra_idx`` with
        ``extra_labels`` (CEAL; they join this model's training set as ordinary samples)."""
        labeled_idx = np.asarray(labeled_idx, dtype=np.int64)
        labels_arr = np.asarray(labels, dtype=np.int64)
        if extra_idx is not None and len(extra_idx):
            extra_idx = np.asarray(extra_idx, dtype=np.int64)
            extra_arr = np.asarray(extra_labels, dtype=np.int64)
            if extra_arr.shape != extra_idx.shape:
                raise ValueError(f"{extra_idx.size} pseudo-labelled samples but "
                                 f"{extra_arr.size} pseudo-labels")
            labeled_idx = np.concatenate([labeled_idx, extra_idx])
            labels_arr = np.concatenate([labels_arr, extra_arr])
        bad = np.flatnonzero((labels_arr < 0) | (labels_arr >= self.dataset.n_classes))
        if bad.size:
            raise ConfigError(f"label {labels_arr[bad[0]]} of sample "
                              f"{self.pool_ids[labeled_idx[bad[0]]]!r} is outside the class set "
                              f"0..{self.dataset.n_classes - 1}")
        validate = None
        if len(self.dataset.val):
            def validate(model):
                score = self._metrics(model, "val")[self.primary_metric]
                return -np.inf if np.isnan(score) else score
        return fit_classifier(self.dataset.train, labeled_idx, labels_arr, config=self.config,
                              n_classes=self.dataset.n_classes,
                              in_channels=self.dataset.in_channels, seed=seed, validate=validate,
                              init_model=init_model, init_backbone=self.pretrained_state,
                              device=self.device, progress=self.progress)

    def evaluate(self, model, split: str) -> dict[str, float]:
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        return self._metrics(model, split)

    def _metrics(self, model, split: str) -> dict[str, float]:
        data = getattr(self.dataset, split)
        if len(data) == 0 or data.labels is None:
            return {}
        probas, _ = predict(model, data, np.arange(len(data)), image_size=self.config.image_size,
                            batch_size=self.config.inference_batch_size, device=self.device)
        return classification_metrics(data.labels, probas)

    def predictions(self, model, *, seed: int) -> CachedPredictions:
        train, cfg = self.dataset.train, self.config
        memo: dict[bytes, dict[str, np.ndarray]] = {}

        def forward(idx: np.ndarray, field: str) -> np.ndarray:
            # probabilities and embeddings come from one pass over each chunk; an entry is
            # dropped once both fields have taken it (BADGE asks for both in turn)
            key = idx.tobytes()
            if key not in memo:
                probas, feats = predict(model, train, idx, image_size=cfg.image_size,
                                        batch_size=cfg.inference_batch_size,
                                        device=self.device, with_features=True)
                memo[key] = {"probas": probas, "embeddings": feats}
            out = memo[key].pop(field)
            if not memo[key]:
                del memo[key]
            return out

        providers = {
            "probas": lambda idx: forward(idx, "probas"),
            "embeddings": lambda idx: forward(idx, "embeddings"),
            "mc_probas": lambda idx: predict_mc(model, train, idx, n_samples=cfg.n_mc_samples,
                                                seed=seed, image_size=cfg.image_size,
                                                batch_size=cfg.inference_batch_size,
                                                device=self.device),
        }
        cache_dir = None
        if self.cache_dir is not None:
            self._round += 1
            cache_dir = Path(self.cache_dir) / f"predictions_{self._round:03d}"
        return CachedPredictions(len(train), providers, n_mc_samples=cfg.n_mc_samples,
                                 chunk_size=self.chunk_size, cache_dir=cache_dir,
                                 dtype=self.cache_dtype)

    def describe(self) -> dict[str, Any]:
        ds = self.dataset
        return {"task": self.kind, "dataset": ds.name, "source": ds.source,
                "classes": ds.classes, "n_pool": len(ds.train), "n_val": len(ds.val),
                "n_test": len(ds.test), "primary_metric": self.primary_metric,
                "device": self.device, "training": self.config.to_dict(),
                **({"ssl": self.ssl_key["ssl"]} if self.ssl_key is not None else {})}


def _pool_fingerprint(pool_ids: np.ndarray) -> str:
    """A short hash of the pool's sample ids (order included): the data part of a cache key."""
    digest = hashlib.sha1()
    for sid in pool_ids:
        digest.update(str(sid).encode("utf-8") + b"\0")
    return f"{len(pool_ids)}:{digest.hexdigest()[:16]}"
