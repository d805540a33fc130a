"""Image classification as an active-learning task.

Wraps a :class:`~medactive.data.pool.Dataset` and a :class:`~medactive.tasks.classification.presets.TrainConfig`:
``fit`` trains a classifier and keeps the best validation checkpoint, ``evaluate`` reports
accuracy / balanced accuracy / AUC / per-class recall, ``predictions`` hands strategies lazy,
cached model outputs over the pool (one inference pass shared by probabilities and embeddings).
``pretrain`` (optional) SimCLR-pretrains the backbone on the pool without labels; every model
``fit`` builds from scratch then starts from it, and ``ssl_predictions`` holds its embeddings for
a cold-start choice of the initial set (survey §4.2).

With an :class:`~medactive.encoders.Encoder` (``medactive pretrain`` or ``timm:NAME``) the task
runs in one of two training modes:

- ``"finetune"``: every fresh model is ``Classifier(encoder.fresh_backbone(), c, dropout)``,
  trained whole by the preset's recipe (the preset's ``model`` / ``width`` are then unused);
- ``"frozen"``: the encoder's pool, val and test embeddings are computed once
  (:func:`~medactive.encoders.cached_embeddings`), standardised with the pool's statistics, and
  each round trains only a head on them (:mod:`medactive.tasks.classification.head`); strategies get the
  head's probabilities, MC-dropout samples and penultimate inputs as usual.

``semi_supervised="fixmatch"`` adds FixMatch on the unlabelled pool (pool minus the labelled and
pseudo-labelled samples) to every round's training: on images in finetune mode
(:func:`~medactive.tasks.classification.train.fit_classifier`), on feature-space views of the
embeddings in frozen mode. Its pseudo-targets live only inside a training step: they never
reach the oracle, ``selections.csv`` or a project's label store.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medactive.data.pool import Dataset
from medactive.data.tensors import load_images
from medactive.encoders import Encoder, cached_embeddings, fingerprint_ids
from medactive.encoders.simclr import SSLConfig, backbone_embeddings, pretrain_simclr
from medactive.errors import ConfigError
from medactive.predictions import ArrayPredictions, CachedPredictions
from medactive.tasks.adversarial import dfal_provider
from medactive.tasks.classification.head import (
    HeadConfig,
    Standardiser,
    build_head,
    fit_head,
    head_mc_probas,
    head_outputs,
    head_probas,
)
from medactive.tasks.classification.metrics import classification_metrics
from medactive.tasks.classification.model import Classifier
from medactive.tasks.classification.presets import TrainConfig
from medactive.tasks.classification.semi_supervised import FixMatchConfig, semi_supervised_config
from medactive.tasks.classification.train import fit_classifier, predict, predict_mc
from medactive.tasks.discrepancy import discrepancy_providers
from medactive.tasks.ensemble import (
    Ensemble,
    check_ensemble_workers,
    ensemble_size_of,
    fit_ensemble,
    mean_probas,
    member_state,
    resolve_ensemble_workers,
)
from medactive.tasks.evidential import dirichlet_alpha_provider
from medactive.tasks.learning_loss import attach_from_state, predicted_loss_provider
from medactive.tasks.tta import classification_provider as tta_provider

logger = logging.getLogger(__name__)

#: the values of ``train_mode``
TRAIN_MODES = ("finetune", "frozen")


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
        progress: report training, pool scoring and embedding progress
            (:mod:`medactive.progress`: a bar on a terminal, plain lines otherwise).
        chunk_size: pool inference runs over at most this many images at a time.
        cache_dir: keep each round's pool outputs in memory-mapped files here (large pools);
            ``None`` keeps them in memory.
        cache_dtype: storage dtype of that cache, e.g. ``"float16"`` to halve it.
        encoder: where models start from (finetune) or the fixed features (frozen); ``None``:
            models are built from the preset (and :meth:`pretrain`, if called).
        train_mode: ``"finetune"`` or ``"frozen"`` (needs ``encoder``).
        head: frozen mode's head recipe (default :class:`HeadConfig`); finetune: must be
            ``None``.
        semi_supervised: ``"fixmatch"`` or ``None``.
        semi_options: overrides of :class:`FixMatchConfig` fields.
        embedding_cache_dir: where frozen mode keeps the encoder's embeddings (default
            :func:`~medactive.encoders.default_cache_dir`).
        scoring_progress: the pool-scoring bars alone (default: as ``progress``); a project
            turns them off because it reports scoring for every field itself.
        ensemble_workers: a deep ensemble's members train in this many worker processes
            (1: one after the other; ``None``: as many as the cores hold at this process's
            torch threads, :func:`~medactive.tasks.ensemble.resolve_ensemble_workers`). An
            execution setting: the members are the same whatever it is.

    Raises:
        ConfigError: an unknown mode, frozen mode without an encoder, a head outside frozen
            mode, an unknown semi-supervised method or option.
    """

    kind = "classification"
    #: ``fit`` trains on pseudo-labelled samples too (``extra_idx`` / ``extra_labels``, CEAL)
    supports_pseudo_labels = True

    def __init__(self, dataset: Dataset, config: TrainConfig, *, device: str = "cpu",
                 progress: bool = False, chunk_size: int | None = 65536,
                 cache_dir: str | None = None, cache_dtype: str | None = None,
                 encoder: Encoder | None = None, train_mode: str = "finetune",
                 head: HeadConfig | None = None, semi_supervised: str | None = None,
                 semi_options: dict[str, Any] | None = None,
                 embedding_cache_dir: str | Path | None = None,
                 scoring_progress: bool | None = None,
                 ensemble_workers: int | None = 1) -> None:
        if train_mode not in TRAIN_MODES:
            raise ConfigError(f"train mode must be one of {', '.join(TRAIN_MODES)}, got "
                              f"{train_mode!r}")
        if train_mode == "frozen" and encoder is None:
            raise ConfigError("--train-mode frozen trains a head on a fixed encoder's "
                              "embeddings: give --encoder FILE|timm:NAME")
        if head is not None and train_mode != "frozen":
            raise ConfigError("a head recipe (--head) applies to --train-mode frozen only")
        self.semi: FixMatchConfig | None = semi_supervised_config(semi_supervised, semi_options)
        if dataset.train.labels is None:
            raise ConfigError(f"{dataset.source or dataset.name}: the pool has no labels; a "
                              "simulated run needs ground truth (use a project for real labelling)")
        dataset.check_labels()
        self.dataset = dataset
        self.config = config
        self.device = resolve_device(device)
        self.progress = progress
        #: the pool-scoring bars of :meth:`predictions` (off where a caller reports scoring
        #: itself, as a project does for every field)
        self.scoring_progress = progress if scoring_progress is None else scoring_progress
        self.chunk_size, self.cache_dir, self.cache_dtype = chunk_size, cache_dir, cache_dtype
        self.ensemble_workers = check_ensemble_workers(ensemble_workers)
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
        self.encoder = encoder
        self.train_mode = train_mode
        self.head = head if head is not None else (HeadConfig() if train_mode == "frozen"
                                                   else None)
        #: trained with the evidential loss (``--evidential``: the CNN, or the frozen head)
        self.evidential = bool(config.evidential or (self.head is not None
                                                     and self.head.evidential))
        if self.evidential:
            if self.semi is not None:
                raise ConfigError("--evidential with --semi-supervised is not supported "
                                  "(FixMatch's loss is a cross-entropy)")
            self.config = config.replace(evidential=True)
            if self.head is not None:
                self.head = HeadConfig(**{**self.head.to_dict(), "evidential": True})
        self.semi_supervised = semi_supervised
        self.embedding_cache_dir = embedding_cache_dir
        if encoder is not None:
            self._check_encoder(encoder)
        #: frozen mode: standardised embeddings per split, computed on first use
        self._features: dict[str, np.ndarray] | None = None
        self._standardiser: Standardiser | None = None

    def _check_encoder(self, encoder: Encoder) -> None:
        """A cheap forward pass on one pool image: a mismatched encoder fails here, clearly."""
        from medactive.data.tensors import load_images, normalise_batch

        try:
            with torch.no_grad():
                x = normalise_batch(load_images(self.dataset.train, np.arange(1), None))
                out = encoder.backbone.eval()(x)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure here is a mismatch to report
            raise ConfigError(f"encoder {encoder.name} cannot embed this data's "
                              f"{tuple(x.shape[1:])} images: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        if out.ndim != 2 or out.shape[1] != encoder.out_features:
            raise ConfigError(f"encoder {encoder.name} gives features of shape "
                              f"{tuple(out.shape)}, expected [n, {encoder.out_features}]")

    def embeddings(self, split: str) -> np.ndarray:
        """Frozen mode: the standardised encoder embeddings ``[n, d]`` of ``split``
        (``"train"`` = the pool, ``"val"``, ``"test"``), computed once (and cached on disk)."""
        if self.encoder is None:
            raise ConfigError("this task has no encoder")
        if self._features is None:
            raw = {name: cached_embeddings(self.encoder, getattr(self.dataset, name),
                                           cache_dir=self.embedding_cache_dir,
                                           batch_size=self.config.inference_batch_size,
                                           device=self.device, progress=self.progress)
                   for name in ("train", "val", "test")}
            head = self.head or HeadConfig()
            d = self.encoder.out_features
            self._standardiser = (Standardiser.fit(raw["train"]) if head.standardise
                                  else Standardiser.identity(d))
            self._features = {name: self._standardiser(values) for name, values in raw.items()}
        return self._features[split]

    def _unlabeled_idx(self, used_idx: np.ndarray) -> np.ndarray:
        """Pool indices outside ``used_idx`` (labelled and pseudo-labelled samples)."""
        mask = np.ones(len(self.pool_ids), dtype=bool)
        mask[used_idx] = False
        return np.flatnonzero(mask).astype(np.int64)

    def _fresh_model(self, seed: int) -> Classifier:
        """Finetune mode with an encoder: a new classifier on a copy of the encoder's backbone;
        the random head depends on ``seed`` only."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return Classifier(self.encoder.fresh_backbone(), self.dataset.n_classes,
                              self.config.dropout)

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
        if self.encoder is not None:
            raise ConfigError("--ssl pretrains a backbone and --encoder supplies one: use one "
                              "(`medactive pretrain` writes an encoder file)")
        cfg = self.config
        key = {"ssl": ssl.to_dict(), "seed": int(seed), "model": cfg.model, "width": cfg.width,
               "image_size": cfg.image_size, "in_channels": self.dataset.in_channels,
               "pool": fingerprint_ids(self.pool_ids)}
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
        """The pretrained backbone's (else the encoder's) L2-normalised pool embeddings
        ``[n_pool, d]`` as predictions (field ``"embeddings"``), for a cold-start initial set;
        ``None`` when the task has neither."""
        if self.pretrained_state is None and self.encoder is None:
            return None
        if self._ssl_embeddings is None and self.pretrained_state is None:
            raw = cached_embeddings(self.encoder, self.dataset.train,
                                    cache_dir=self.embedding_cache_dir,
                                    batch_size=self.config.inference_batch_size,
                                    device=self.device, progress=self.progress)
            norms = np.linalg.norm(raw, axis=1, keepdims=True)
            self._ssl_embeddings = (raw / np.maximum(norms, 1e-12)).astype(np.float32)
        elif self._ssl_embeddings is None:
            cfg = self.config
            self._ssl_embeddings = backbone_embeddings(
                self.pretrained_state, self.dataset.train, model=cfg.model,
                in_channels=self.dataset.in_channels, width=cfg.width,
                image_size=cfg.image_size, batch_size=cfg.inference_batch_size,
                device=self.device)
        return ArrayPredictions(embeddings=self._ssl_embeddings)

    def pool_labels(self, idx: np.ndarray) -> list[int]:
        return [int(v) for v in self.dataset.train.labels[np.asarray(idx, dtype=np.int64)]]

    def load_model(self, state: dict[str, torch.Tensor]) -> Classifier:
        """A model of this task's kind (frozen head, classifier on the encoder's backbone, or
        the recipe's CNN) holding ``state`` (a saved ``model.state_dict()``), in eval mode;
        the state of a deep ensemble gives an :class:`~medactive.tasks.ensemble.Ensemble`."""
        size = ensemble_size_of(state)
        if size is not None:  # each member loads as a model of its own
            return Ensemble([self.load_model(member_state(state, i))
                             for i in range(size)]).eval()
        if self.train_mode == "frozen":
            model = build_head(self.head, self.encoder.out_features, self.dataset.n_classes,
                               seed=0)
        elif self.encoder is not None:
            model = self._fresh_model(0)
        else:
            from medactive.tasks.classification.model import build_classifier

            cfg = self.config
            model = build_classifier(cfg.model, in_channels=self.dataset.in_channels,
                                     n_classes=self.dataset.n_classes, width=cfg.width,
                                     dropout=cfg.dropout)
        attach_from_state(model, state)  # a model trained with --learning-loss
        model.load_state_dict(state)
        model.evidential = self.evidential
        return model.to(self.device).eval()

    def fit(self, labeled_idx: np.ndarray, labels: list[Any], *, seed: int,
            init_model: Any | None = None, extra_idx: np.ndarray | None = None,
            extra_labels: np.ndarray | None = None):
        """Train on ``labeled_idx`` with ``labels``, plus pseudo-labelled ``extra_idx`` with
        ``extra_labels`` (CEAL; they join this model's training set as ordinary samples).

        With ``config.ensemble_size`` M > 1: M models, member 0 from ``seed`` (the model of
        M = 1), the others from seeds derived from it, one after the other or in
        :meth:`ensemble_execution`'s worker processes, returned as an
        :class:`~medactive.tasks.ensemble.Ensemble` (:mod:`medactive.tasks.ensemble`)."""
        size = self.config.ensemble_size
        if size == 1:
            return self._fit_model(labeled_idx, labels, seed=seed, init_model=init_model,
                                   extra_idx=extra_idx, extra_labels=extra_labels)
        workers, threads = self.ensemble_execution()
        if workers > 1 and self.train_mode == "frozen":
            self.embeddings("train")  # once here, not in every worker
        fit_member = _MemberFit(self if workers == 1 else self._worker_copy(), labeled_idx,
                                labels, extra_idx, extra_labels)
        return fit_ensemble(fit_member, size=size, seed=seed, init_model=init_model,
                            workers=workers, threads=threads)

    def ensemble_execution(self) -> tuple[int, int]:
        """``(workers, torch threads per worker)`` that a deep ensemble's members train with
        (``(1, threads)``: serially; always so on a GPU, which the members share)."""
        requested = self.ensemble_workers if self.device == "cpu" else 1
        return resolve_ensemble_workers(requested, self.config.ensemble_size)

    def execution(self) -> dict[str, Any]:
        """How this task computes, not what (run.json ``execution``): torch threads and, for
        a deep ensemble, its worker processes and their threads."""
        info: dict[str, Any] = {"threads": torch.get_num_threads()}
        if self.config.ensemble_size > 1:
            workers, threads = self.ensemble_execution()
            info.update(ensemble_workers=workers, ensemble_member_threads=threads)
        return info

    def _worker_copy(self) -> ClassificationTask:
        """This task as the worker processes get it (pickled): without progress bars, which
        would interleave on the terminal."""
        clone = copy.copy(self)
        clone.progress = clone.scoring_progress = False
        return clone

    def _fit_model(self, labeled_idx: np.ndarray, labels: list[Any], *, seed: int,
                   init_model: Any | None = None, extra_idx: np.ndarray | None = None,
                   extra_labels: np.ndarray | None = None):
        """One model of :meth:`fit`."""
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
        # FixMatch's unlabelled set: never a labelled or pseudo-labelled sample
        unlabeled_idx = self._unlabeled_idx(labeled_idx) if self.semi is not None else None
        if self.train_mode == "frozen":
            pool = self.embeddings("train")
            return fit_head(pool[labeled_idx], labels_arr, n_classes=self.dataset.n_classes,
                            config=self.head, seed=seed, validate=validate,
                            init_model=init_model,
                            unlabeled=None if unlabeled_idx is None else pool[unlabeled_idx],
                            semi=self.semi, learning_loss=self.config.learning_loss)
        if init_model is None and self.encoder is not None:
            init_model = self._fresh_model(seed)
        return fit_classifier(self.dataset.train, labeled_idx, labels_arr, config=self.config,
                              n_classes=self.dataset.n_classes,
                              in_channels=self.dataset.in_channels, seed=seed, validate=validate,
                              init_model=init_model, init_backbone=self.pretrained_state,
                              device=self.device, progress=self.progress,
                              unlabeled_idx=unlabeled_idx, semi=self.semi)

    def evaluate(self, model, split: str) -> dict[str, float]:
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        return self._metrics(model, split)

    def _metrics(self, model, split: str) -> dict[str, float]:
        data = getattr(self.dataset, split)
        if len(data) == 0 or data.labels is None:
            return {}
        return classification_metrics(data.labels, self._probas_of(model, split))

    def _probas_of(self, model, split: str) -> np.ndarray:
        """``[n, c]`` probabilities of ``split``: an ensemble's are its members' mean."""
        if isinstance(model, Ensemble):
            return mean_probas([self._probas(member, split) for member in model])
        return self._probas(model, split)

    def _probas(self, model, split: str) -> np.ndarray:
        data = getattr(self.dataset, split)
        if self.train_mode == "frozen":
            return head_probas(model, self.embeddings(split))
        probas, _ = predict(model, data, np.arange(len(data)), image_size=self.config.image_size,
                            batch_size=self.config.inference_batch_size, device=self.device)
        return probas

    def predictions(self, model, *, seed: int,
                    labeled_idx: np.ndarray | None = None) -> CachedPredictions:
        """Lazy pool outputs of ``model``; ``labeled_idx`` (the round's labeled set) is what
        the discriminator fields ``"dal_unlabeled"`` / ``"vaal_unlabeled"`` are trained
        against (:mod:`medactive.tasks.discrepancy`)."""
        train, cfg = self.dataset.train, self.config
        memo: dict[bytes, dict[str, np.ndarray]] = {}
        frozen = self.train_mode == "frozen"
        pool = self.embeddings("train") if frozen else None
        # a deep ensemble: "probas" is the members' mean, "member_probas" their stack, and
        # every other field (embeddings, MC dropout, ...) is member 0's
        ensemble = model if isinstance(model, Ensemble) else None
        if ensemble is not None:
            model = ensemble[0]

        def outputs(member, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if frozen:
                return head_outputs(member, pool[idx])
            return predict(member, train, idx, image_size=cfg.image_size,
                           batch_size=cfg.inference_batch_size, device=self.device,
                           with_features=True, progress=self.scoring_progress,
                           desc="scoring the pool (probabilities)", fold_norms=True)

        def forward(idx: np.ndarray, field: str) -> np.ndarray:
            # probabilities and embeddings come from one pass over each chunk; an entry is
            # dropped once both fields have taken it (BADGE asks for both in turn)
            key = idx.tobytes()
            if key not in memo:
                if ensemble is None:
                    probas, feats = outputs(model, idx)
                    memo[key] = {"probas": probas, "embeddings": feats}
                else:
                    probas, feats = zip(*(outputs(member, idx) for member in ensemble))
                    members = np.stack(probas, axis=-1)
                    memo[key] = {"probas": members.mean(axis=-1), "embeddings": feats[0],
                                 "member_probas": members}
            out = memo[key].pop(field)
            if not memo[key]:
                del memo[key]
            return out

        def mc(idx: np.ndarray) -> np.ndarray:
            # the passes the predictions hold (the preset's, or a strategy's n_mc_samples)
            passes = preds.n_mc_samples
            if frozen:
                return head_mc_probas(model, pool[idx], idx=idx, n_samples=passes, seed=seed)
            return predict_mc(model, train, idx, n_samples=passes, seed=seed,
                              image_size=cfg.image_size, batch_size=cfg.inference_batch_size,
                              device=self.device, progress=self.scoring_progress,
                              desc="scoring the pool (MC dropout)", fold_norms=True)

        providers = {
            "probas": lambda idx: forward(idx, "probas"),
            "embeddings": lambda idx: forward(idx, "embeddings"),
            "mc_probas": mc,
            **({} if ensemble is None else
               {"member_probas": lambda idx: forward(idx, "member_probas")}),
            "predicted_loss": predicted_loss_provider(
                model, features=pool, split=train, image_size=cfg.image_size,
                batch_size=cfg.inference_batch_size, device=self.device),
            "tta_probas": tta_provider(self, model, seed=seed,
                                       n_augmentations=lambda: preds.n_augmentations),
            "dfal_distance": dfal_provider(
                model, features=pool, split=train, image_size=cfg.image_size,
                batch_size=cfg.inference_batch_size, device=self.device,
                progress=self.scoring_progress),
            "dirichlet_alpha": dirichlet_alpha_provider(
                model, features=pool, split=train, image_size=cfg.image_size,
                batch_size=cfg.inference_batch_size, device=self.device),
            **discrepancy_providers(
                len(train), labeled_idx, seed=seed,
                embeddings=lambda idx: preds.get("embeddings", idx),
                images=lambda idx, size: load_images(train, idx, size)),
        }
        cache_dir = None
        if self.cache_dir is not None:
            self._round += 1
            cache_dir = Path(self.cache_dir) / f"predictions_{self._round:03d}"
        preds = CachedPredictions(len(train), providers, n_mc_samples=cfg.n_mc_samples,
                                  chunk_size=self.chunk_size, cache_dir=cache_dir,
                                  dtype=self.cache_dtype)
        return preds

    def describe(self) -> dict[str, Any]:
        ds = self.dataset
        return {"task": self.kind, "dataset": ds.name, "source": ds.source,
                "classes": ds.classes, "n_pool": len(ds.train), "n_val": len(ds.val),
                "n_test": len(ds.test), "primary_metric": self.primary_metric,
                "device": self.device, "training": self.config.to_dict(),
                **({"ssl": self.ssl_key["ssl"]} if self.ssl_key is not None else {}),
                "train_mode": self.train_mode,
                **({"ensemble": {
                    "size": self.config.ensemble_size,
                    "evaluated": "the mean of the members' probabilities (metrics, probas)",
                    "seeds": "member 0: the round's training seed; member i: "
                             "derive_seed(seed, 'ensemble member', i)",
                    "fields": "member_probas: every member's; embeddings, mc_probas and the "
                              "other fields: member 0's"}}
                   if self.config.ensemble_size > 1 else {}),
                "encoder": None if self.encoder is None else self.encoder.describe(),
                **({"backbone": "the encoder's (training.model / width unused)"}
                   if self.encoder is not None and self.train_mode == "finetune" else {}),
                "head": None if self.head is None else {
                    **self.head.to_dict(), "device": "cpu",
                    "standardisation": "per-dimension mean and std of the pool's embeddings"
                    if self.head.standardise else None},
                "semi_supervised": None if self.semi is None else {
                    "method": self.semi_supervised, **self.semi.to_dict(),
                    "views": "images (weak/strong augmentation)" if self.train_mode == "finetune"
                    else "embeddings (feature_weak / feature_strong)"}}


class _MemberFit:
    """One deep-ensemble member's training, picklable for a worker process:
    ``fit(member_seed, member_init)`` is ``task._fit_model`` on the round's labels."""

    def __init__(self, task: ClassificationTask, labeled_idx, labels, extra_idx,
                 extra_labels) -> None:
        self.task, self.labeled_idx, self.labels = task, labeled_idx, labels
        self.extra_idx, self.extra_labels = extra_idx, extra_labels

    def __call__(self, member_seed: int, member_init: Any | None):
        return self.task._fit_model(self.labeled_idx, self.labels, seed=member_seed,
                                    init_model=member_init, extra_idx=self.extra_idx,
                                    extra_labels=self.extra_labels)
