"""Active learning for segmentation: 2D slices to label, 3D volumes to evaluate (survey §5.2, §6).

:class:`SegmentationTask` satisfies :class:`medactive.loop.task.Task`. The pool is every training
slice (ACDC, survey protocol: the 656 end-diastolic slices of 70 patients); a label is the
slice's mask ``[H, W]`` at its original size. Each round trains the U-Net of
:mod:`.unet` with a preset of :mod:`.presets`, keeps the weights of the best validation Dice,
and evaluates on val/test volumes in 3D (:mod:`.metrics`): each volume is predicted slice by
slice, the probabilities resized back to the original size, and Dice, ASD and HD95 computed per
class and averaged over volumes. Strategies get a :class:`.predictions.SegmentationPredictions`.

Example:
    >>> from medactive.loop.active_loop import LoopConfig, run_active_learning
    >>> task = build_segmentation_task("../shared/data/acdc", preset="smoke")  # doctest: +SKIP
    >>> records = run_active_learning(task, LoopConfig("entropy", 10, 10, 1))  # doctest: +SKIP
    >>> records[-1].metrics["test_dice_mean"]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medactive.data.segmentation import (
    SegmentationData,
    load_segmentation_data,
    looks_like_segmentation_data,
)
from medactive.errors import ConfigError, DataError
from medactive.tasks.segmentation.mean_teacher import MeanTeacherConfig, semi_supervised_config
from medactive.tasks.segmentation.metrics import multiclass_metrics
from medactive.tasks.segmentation.predictions import SegmentationPredictions, check_reduction
from medactive.tasks.segmentation.presets import SegmentationPreset, get_preset
from medactive.tasks.segmentation.train import (
    FitLog,
    predict_volume,
    resize_masks,
    resize_slices,
    train_unet,
)
from medactive.tasks.segmentation.unet import UNet2D

logger = logging.getLogger(__name__)

__all__ = ["SegmentationTask", "build_segmentation_task", "looks_like_segmentation_data"]


class EvalVolumes:
    """Evaluation volumes held in memory: resized inputs, original masks, spacings."""

    def __init__(self, refs, size: int, n_classes: int, progress: bool) -> None:
        self.ids: list[str] = []
        self.inputs: list[torch.Tensor] = []  # [S, 1, size, size]
        self.images: list[np.ndarray] = []  # [S, H, W] originals, for figures
        self.masks: list[np.ndarray] = []  # [S, H, W] uint8
        self.spacings: list[tuple[float, float, float] | None] = []
        for ref in _progress_items(refs, progress, "loading evaluation volumes", "volume"):
            image, mask = ref.load()
            self.ids.append(ref.id)
            self.images.append(image)
            self.masks.append(mask)
            self.spacings.append(ref.spacing)
            self.inputs.append(resize_slices(torch.from_numpy(image)[:, None], size))

    def __len__(self) -> int:
        return len(self.ids)


class SegmentationTask:
    """Slice-wise active learning with 3D evaluation (see the module docstring).

    Args:
        data: the dataset (:func:`~medactive.data.segmentation.load_segmentation_data`).
        preset: training preset (name or :class:`SegmentationPreset`).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        reduction: pixel → slice score reduction (``"mean"``, ``"max"``, ``"foreground"``).
        seed: recorded in :meth:`describe` (the data split never depends on it).
        progress: report loading and training (:mod:`medactive.progress`: a bar on a
            terminal, plain lines otherwise).
        semi_supervised: ``"mean-teacher"`` trains each round as a mean teacher
            (:mod:`.mean_teacher`) with every pool slice that is not labelled as unlabelled
            data; ``None``: supervised only.
        semi_options: overrides of :class:`~.mean_teacher.MeanTeacherConfig` fields.

    Attributes:
        kind: ``"segmentation"``.
        pool_ids: ``[n_pool]`` slice ids.
        pool_groups: ``[n_pool]`` patient ids.
        primary_metric: ``"dice_mean"``.
        last_fit: the :class:`~medactive.tasks.segmentation.train.FitLog` of the latest :meth:`fit`.
        last_model: the model the latest :meth:`fit` returned (the round's model, for
            :func:`~medactive.tasks.segmentation.plots.save_round_figure` from an ``on_round`` hook).
        mean_teacher: the :class:`~.mean_teacher.MeanTeacherConfig`, or ``None``.

    Raises:
        DataError: a file cannot be read or fails its checks (named in the message).
        ConfigError: an unknown semi-supervised method or option.
    """

    kind = "segmentation"
    #: pseudo-labelling (CEAL) is for classification only: ``fit`` takes no ``extra_idx``
    supports_pseudo_labels = False
    primary_metric = "dice_mean"

    def __init__(self, data: SegmentationData, preset: str | SegmentationPreset = "cpu", *,
                 device: str = "cpu", reduction: str = "mean", seed: int = 0,
                 progress: bool = False, semi_supervised: str | None = None,
                 semi_options: dict[str, Any] | None = None) -> None:
        reduction = check_reduction(reduction)
        self.mean_teacher: MeanTeacherConfig | None = semi_supervised_config(semi_supervised,
                                                                             semi_options)
        self.semi_supervised = semi_supervised
        start = time.perf_counter()
        self.data = data
        self.preset = get_preset(preset)
        self.device = _device(device)
        self.reduction = reduction
        self.seed = int(seed)
        self.progress = progress
        self.classes = tuple(data.classes)
        self.class_keys = tuple(name.lower().replace(" ", "_") for name in self.classes[1:])
        size = self.preset.image_size
        if size % 16:
            raise ConfigError(f"image_size {size} must be a multiple of 16 (5-level U-Net)")
        self.pool_ids = np.array([s.id for s in data.train], dtype=str)
        self.pool_groups = np.array([s.group for s in data.train], dtype=str)
        self.pool_volumes = np.array([s.volume for s in data.train], dtype=str)
        masks, inputs = [], []
        for ref in _progress_items(data.train, progress, "loading pool slices", "slice"):
            image, mask = ref.load()
            if image.ndim != 2:
                raise DataError(f"{ref.source}: slice {ref.id!r} has shape {image.shape}; "
                                "expected [H, W]")
            masks.append(mask)
            inputs.append(resize_slices(torch.from_numpy(image)[None, None], size))
        self._pool_masks = masks
        self._pool_images = torch.cat(inputs) if inputs else torch.zeros(0, 1, size, size)
        self._val = EvalVolumes(data.val, size, len(self.classes), progress)
        self._test = EvalVolumes(data.test, size, len(self.classes), progress)
        if not len(self._val) or not len(self._test):
            raise DataError(f"{data.source}: need at least one validation and one test volume "
                            f"(found {len(self._val)} and {len(self._test)})")
        self.last_fit: FitLog | None = None
        self.last_model: UNet2D | None = None
        self.load_seconds = time.perf_counter() - start
        logger.info("segmentation data %s: %d slices, %d val and %d test volumes (%.1fs)",
                    data.source, len(self.pool_ids), len(self._val), len(self._test),
                    self.load_seconds)

    # ---------------------------------------------------------------- Task protocol
    def pool_labels(self, idx: np.ndarray) -> list[np.ndarray]:
        """Ground-truth masks ``[H, W]`` (uint8, original size) of pool indices ``idx``."""
        return [self._pool_masks[int(i)].copy() for i in np.asarray(idx, dtype=np.int64)]

    def new_model(self, seed: int) -> UNet2D:
        """A freshly initialised U-Net (weights seeded by ``seed``)."""
        torch.manual_seed(seed)
        return UNet2D(1, len(self.classes), channels=self.preset.channels,
                      dropout=self.preset.dropout)

    def fit(self, labeled_idx: np.ndarray, labels: list[Any], *, seed: int,
            init_model: UNet2D | None = None) -> UNet2D:
        """Train on the labeled slices and return the model of the best validation Dice.

        Args:
            labeled_idx: ``[n]`` pool indices.
            labels: ``n`` masks ``[H, W]`` of those slices (original size, class indices).
            seed: seeds initialisation, batches, augmentation and dropout.
            init_model: the previous round's model to fine-tune (copied, not modified), or
                ``None`` to train from scratch.

        Raises:
            DataError: a mask whose shape differs from its slice or with values outside the
                class set (the message names the slice).
        """
        labeled_idx = np.asarray(labeled_idx, dtype=np.int64)
        if len(labels) != labeled_idx.size:
            raise ValueError(f"{labeled_idx.size} labeled indices but {len(labels)} labels")
        masks = torch.cat([self._label_tensor(int(i), m)
                           for i, m in zip(labeled_idx, labels, strict=True)])
        images = self._pool_images[torch.as_tensor(labeled_idx)]
        net = copy.deepcopy(init_model) if init_model is not None else self.new_model(seed)
        net, log = self.train_round(net, images, masks, seed=seed, labeled_slices=labeled_idx)
        self.last_fit, self.last_model = log, net
        logger.info("trained on %d slices: %d steps in %.1fs, best val dice %.4f at step %d",
                    labeled_idx.size, log.iterations, log.seconds, log.best_val,
                    log.best_iteration)
        return net

    def train_round(self, net: UNet2D, images: torch.Tensor, masks: torch.Tensor, *,
                    seed: int, labeled_slices: np.ndarray | None) -> tuple[UNet2D, FitLog]:
        """:func:`~.train.train_unet` with this task's preset, device, validation and
        semi-supervision.

        Args:
            net: the model to train (in place).
            images: ``[n, 1, s, s]`` labelled slices at the network size.
            masks: ``[n, s, s]`` their label maps (``IGNORE_INDEX`` where unlabelled).
            seed: seeds batches, augmentation, dropout and the unlabelled stream.
            labeled_slices: pool indices of the fully labelled slices, left out of the
                mean teacher's unlabelled set; ``None``: every pool slice is unlabelled data
                (region AL, where a slice's unlabelled pixels still carry information).
        """
        unlabeled, mean_teacher = None, self.mean_teacher
        if mean_teacher is not None:
            keep = np.ones(len(self.pool_ids), dtype=bool)
            if labeled_slices is not None:
                keep[np.asarray(labeled_slices, dtype=np.int64)] = False
            if keep.any():
                unlabeled = self._pool_images[torch.as_tensor(np.flatnonzero(keep))]
            else:
                logger.warning("every pool slice is labelled: this round trains without the "
                               "mean teacher")
                mean_teacher = None
        return train_unet(net, images, masks, self.preset, seed=seed, device=self.device,
                          validate=self._val_dice, progress=self.progress,
                          unlabeled=unlabeled, mean_teacher=mean_teacher)

    def evaluate(self, model: UNet2D, split: str) -> dict[str, float]:
        """3D metrics on ``"val"`` or ``"test"``.

        Returns:
            ``dice_<class>``, ``asd_<class>``, ``hd95_<class>`` for each foreground class
            (``rv``, ``myo``, ``lv`` for ACDC), each averaged over volumes, and their means
            ``dice_mean``, ``asd_mean``, ``hd95_mean``. Distances are in mm when the spacing is
            known, else in voxels (see :meth:`describe`).
        """
        per_class = self._volume_metrics(model, split, distances=True)
        out: dict[str, float] = {}
        for metric in ("dice", "asd", "hd95"):
            values = [float(np.mean([m[k][metric] for m in per_class]))
                      for k in range(1, len(self.classes))]
            out[f"{metric}_mean"] = float(np.mean(values))
            out.update({f"{metric}_{key}": v for key, v in zip(self.class_keys, values,
                                                               strict=True)})
        return out

    def predictions(self, model: UNet2D, *, seed: int,
                    labeled_idx: np.ndarray | None = None) -> SegmentationPredictions:
        """Streamed outputs of ``model`` over the pool (see :mod:`.predictions`);
        ``labeled_idx`` is what DAL's discriminator is trained against."""
        return SegmentationPredictions(model, self._pool_images, seed=seed, device=self.device,
                                       batch_size=self.preset.predict_batch_size,
                                       n_mc_samples=self.preset.n_mc_samples,
                                       reduction=self.reduction, progress=self.progress,
                                       labeled_idx=labeled_idx)

    def describe(self) -> dict[str, Any]:
        """Data source, preset (with its deviations from the survey), model and metric units."""
        n_params = sum(p.numel() for p in self.new_model(0).parameters())
        return {
            "task": self.kind, "data": self.data.describe(), "preset": self.preset.to_dict(),
            "device": str(self.device), "reduction": self.reduction, "seed": self.seed,
            "model": {"name": "UNet2D", "levels": len(self.preset.channels),
                      "channels": list(self.preset.channels), "dropout": self.preset.dropout,
                      "n_parameters": int(n_params), "n_classes": len(self.classes)},
            "metrics": {
                "primary": self.primary_metric, "distance_unit": self.data.distance_unit,
                "asd": "mean distance from the predicted to the ground-truth surface (medpy asd)",
                "hd95": "95th percentile of both directed surface distances pooled (medpy hd95)",
                "empty": "class absent from both: dice 1, distances 0; absent from exactly one: "
                         "dice 0, distances = the volume's diagonal",
            },
            "figure": "medactive.tasks.segmentation.plots.save_round_figure(task, model, path)",
            "semi_supervised": self._describe_semi(),
        }

    def _describe_semi(self) -> dict[str, Any] | None:
        if self.mean_teacher is None:
            return None
        return {
            "method": "mean-teacher", **self.mean_teacher.to_dict(),
            "unlabeled": "every pool slice not labelled (region AL: every pool slice)",
            "evaluated": "student (kept at its best validation Dice), as SSL4MIS",
            "pseudo_targets": "teacher softmax inside each step only; never stored as labels",
            "references": "Tarvainen & Valpola 2017; SSL4MIS train_mean_teacher_2D.py",
        }

    # ---------------------------------------------------------------- extras
    def save_figure(self, model: UNet2D, path: str | Path, **kwargs) -> Path:
        """Write the per-round PNG (see :func:`medactive.tasks.segmentation.plots.save_round_figure`)."""
        from medactive.tasks.segmentation.plots import save_round_figure

        return save_round_figure(self, model, path, **kwargs)

    def predict_split(self, model: UNet2D, split: str) -> list[np.ndarray]:
        """Predicted label maps ``[S, H, W]`` of every volume of ``split`` (original size)."""
        vols = self.volumes(split)
        return [predict_volume(model, x, m.shape[1:], device=self.device,
                               batch_size=self.preset.predict_batch_size).numpy()
                for x, m in zip(vols.inputs, vols.masks, strict=True)]

    def volumes(self, split: str) -> EvalVolumes:
        """The in-memory ``"val"`` or ``"test"`` volumes (inputs, masks, spacings)."""
        if split == "val":
            return self._val
        if split == "test":
            return self._test
        raise ConfigError(f"unknown split {split!r}; choose 'val' or 'test'")

    def _volume_metrics(self, model: UNet2D, split: str, *, distances: bool
                        ) -> list[dict[int, dict[str, float]]]:
        vols = self.volumes(split)
        model.eval()
        preds = self.predict_split(model, split)
        return [multiclass_metrics(p, m, range(1, len(self.classes)), s, distances=distances)
                for p, m, s in zip(preds, vols.masks, vols.spacings, strict=True)]

    def _val_dice(self, model: UNet2D) -> float:
        per_class = self._volume_metrics(model, "val", distances=False)
        return float(np.mean([m[k]["dice"] for m in per_class for k in m]))

    def _label_tensor(self, i: int, mask: Any) -> torch.Tensor:
        mask = np.asarray(mask)
        sid = self.pool_ids[i]
        expected = self._pool_masks[i].shape
        if mask.shape != expected:
            raise DataError(f"label of slice {sid!r}: mask shape {mask.shape} differs from the "
                            f"image shape {expected}")
        if mask.size and (mask.min() < 0 or mask.max() >= len(self.classes)):
            raise DataError(f"label of slice {sid!r}: values outside the class set "
                            f"0..{len(self.classes) - 1} ({', '.join(self.classes)})")
        return resize_masks(torch.from_numpy(mask.astype(np.int64))[None],
                            self.preset.image_size)


def build_segmentation_task(data: str | Path, *, preset: str = "cpu", seed: int = 0,
                            device: str = "cpu", iterations: int | None = None,
                            frames: str = "ed", reduction: str = "mean",
                            spacing_csv: str | None = None, progress: bool = False,
                            image_size: int | None = None,
                            train_options: dict[str, Any] | None = None,
                            region_size: int | None = None,
                            semi_supervised: str | None = None,
                            semi_options: dict[str, Any] | None = None) -> Any:
    """Read a segmentation dataset and build its :class:`SegmentationTask`.

    Args:
        data: folder in the SSL4MIS h5 layout, raw ACDC NIfTI, or NIfTI image/mask pairs.
        preset: ``"survey"``, ``"cpu"`` or ``"smoke"``.
        seed: recorded in run.json (the data split does not depend on it).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        iterations: override the preset's iterations per round.
        frames: ``"ed"`` (survey), ``"es"`` or ``"both"`` cardiac frames.
        reduction: pixel → slice score reduction: ``"mean"`` (survey), ``"max"``,
            ``"foreground"`` (alias ``"foreground_mean"``).
        spacing_csv: voxel spacings for the h5 layout (else distances are in voxels).
        progress: report loading and training (:mod:`medactive.progress`).
        image_size: override the preset's network input side (a multiple of 16).
        train_options: overrides of preset fields (e.g. ``{"n_mc_samples": 10}``,
            ``{"lr": 3e-3}``), recorded in the preset's deviations.
        region_size: label square patches of this side (pixels of the resized slice) instead
            of whole slices: returns a
            :class:`~medactive.tasks.segmentation.regions.RegionSegmentationTask` whose pool, initial
            set and budget count patches (survey §4.3.1). ``None``: whole slices.
        semi_supervised: ``"mean-teacher"`` (see :class:`SegmentationTask`) or ``None``.
        semi_options: overrides of :class:`~.mean_teacher.MeanTeacherConfig` fields.

    Returns:
        The :class:`SegmentationTask`, or a ``RegionSegmentationTask`` over it.

    Raises:
        DataError: unreadable or inconsistent data (the message names the file).
        ConfigError: unknown preset, option, reduction, device or semi-supervised method.
    """
    semi_supervised_config(semi_supervised, semi_options)  # fail before loading the data
    options = dict(train_options or {})
    if image_size is not None:
        options["image_size"] = int(image_size)
    preset_obj = get_preset(preset, iterations=iterations, **options)
    if region_size is not None:  # fail before loading the data
        from medactive.tasks.segmentation.regions import check_region_size

        check_region_size(region_size, preset_obj.image_size)
    loaded = load_segmentation_data(data, frames=frames, spacing_csv=spacing_csv)
    task = SegmentationTask(loaded, preset_obj, device=device, reduction=reduction, seed=seed,
                            progress=progress, semi_supervised=semi_supervised,
                            semi_options=semi_options)
    if region_size is None:
        return task
    from medactive.tasks.segmentation.regions import RegionSegmentationTask

    return RegionSegmentationTask(task, region_size)


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r} (cpu, cuda, cuda:N or auto)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


def _progress_items(items, progress: bool, desc: str, unit: str):
    """``items`` with :func:`medactive.progress.progress` reporting when ``progress``."""
    if not progress:
        return items
    from medactive.progress import progress as report

    return report(items, desc=desc, unit=unit)
