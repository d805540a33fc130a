"""Region-based active learning: the labelling unit is a square patch of a slice (survey §4.3.1).

Labelling whole slices spends budget on large, easy structures; labelling patches lets the
budget go where the model is unsure (Mackowiak et al. 2018; Xu et al. 2021).
:class:`RegionSegmentationTask` wraps a :class:`~medactive.tasks.segmentation.task.SegmentationTask`
and changes only the pool:

- **Tiling.** Every training slice, resized to the preset's ``image_size`` ``S`` as training
  sees it, is cut into non-overlapping ``P × P`` patches at offsets ``0, P, 2P, ...``; when
  ``P`` does not divide ``S`` the last row and column of patches are narrower
  (``S - P * floor(S / P)`` pixels), so every pixel belongs to exactly one patch. Patch ids are
  ``"<slice id>@<row>,<col>"`` with ``row, col`` the pixel offsets in the resized slice; the
  pool lists them in slice order, then row-major.
- **Oracle.** :meth:`~RegionSegmentationTask.pool_labels` reveals a patch's mask only: a label
  is the ``[h, w]`` uint8 crop of the resized ground truth at the patch (crops keep the labels
  of a large pool small; :meth:`~RegionSegmentationTask.label_maps` assembles them into
  ``[S, S]`` maps with :data:`~.losses.IGNORE_INDEX` elsewhere).
- **Training.** The same U-Net and preset train on every slice with at least one labelled
  patch; the loss is :func:`~.losses.partial_dice_ce` (cross-entropy and Dice on labelled pixels
  only), and augmentation moves the unlabelled marker with the labels.
- **Scores.** :class:`RegionPredictions` streams the network over the slices of the asked
  patches and reduces each pixel score map per patch with the task's reduction (``mean``,
  ``max``, ``foreground``), so every uncertainty strategy works unchanged. Embeddings (Core-Set,
  TypiClust) are the last decoder features averaged over the patch, ``[n, d]`` with ``d`` the
  first U-Net level's channels (so two patches of a slice differ); BADGE's gradient embedding
  is that of the Dice + CE loss of the patch alone at its argmax pseudo-label.
- **Budget.** The loop counts pool items, so ``initial`` and ``budget`` count patches.
  :meth:`~RegionSegmentationTask.label_metrics` gives ``labelled_pixel_fraction`` (labelled
  pixels / pool pixels, at the network size) and ``n_labelled_slices``;
  :func:`medactive.experiment.run_experiment` adds them to every round's metrics.

Equivalent budgets: a slice has ``S²`` pixels, so ``b`` slices spend the pixels of
``b * S² / P²`` patches when ``P`` divides ``S`` (e.g. ``S = 64``, ``P = 16``: 16 patches a
slice).

Example:
    >>> tile_offsets(8, 4)
    [(0, 0, 4, 4), (0, 4, 4, 4), (4, 0, 4, 4), (4, 4, 4, 4)]
    >>> region_ids(["s1"], 8, 4).tolist()
    ['s1@0,0', 's1@0,4', 's1@4,0', 's1@4,4']

References:
    Mackowiak et al., "CEREALS - Cost-Effective REgion-based Active Learning for Semantic
    Segmentation", BMVC 2018. Xu et al., "Patch-wise active learning for retinal vessel
    segmentation", 2021 (survey §4.3.1).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from medactive.errors import ConfigError, DataError
from medactive.predictions import FIELDS, Predictions
from medactive.tasks.segmentation.losses import IGNORE_INDEX
from medactive.tasks.segmentation.predictions import (
    SegmentationPredictions,
    dice_ce_per_sample,
    reduce_pixels,
)
from medactive.tasks.segmentation.train import FitLog, resize_masks
from medactive.tasks.segmentation.unet import UNet2D

logger = logging.getLogger(__name__)

__all__ = ["RegionPredictions", "RegionSegmentationTask", "check_region_size", "region_ids",
           "tile_grid", "tile_offsets"]


def check_region_size(region_size: Any, image_size: int) -> int:
    """``region_size`` as an int in ``[1, image_size]``.

    Raises:
        ConfigError: not an integer, or outside ``[1, image_size]``.
    """
    if isinstance(region_size, bool) or not isinstance(region_size, (int, np.integer)):
        raise ConfigError(f"region size must be an integer number of pixels, got "
                          f"{region_size!r}")
    if not 1 <= int(region_size) <= int(image_size):
        raise ConfigError(f"region size {region_size} must be between 1 and the network input "
                          f"size {image_size} (the preset's image_size)")
    return int(region_size)


def tile_offsets(size: int, patch: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping ``patch × patch`` tiles of a ``size × size`` image, row-major.

    Returns:
        ``(row, col, height, width)`` per tile; the last row/column is narrower when ``patch``
        does not divide ``size``.

    Example:
        >>> tile_offsets(10, 4)[:3]
        [(0, 0, 4, 4), (0, 4, 4, 4), (0, 8, 4, 2)]
    """
    patch = check_region_size(patch, size)
    starts = range(0, size, patch)
    return [(r, c, min(patch, size - r), min(patch, size - c)) for r in starts for c in starts]


def tile_grid(height: int, width: int, patch: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping ``patch × patch`` tiles of a ``height × width`` image, row-major.

    The rectangular twin of :func:`tile_offsets` (annotation projects tile slices at their
    original size); ``patch`` may exceed a side (then one tile spans it).

    Returns:
        ``(row, col, h, w)`` per tile; the last row/column is narrower when ``patch`` does not
        divide the side.

    Raises:
        ConfigError: ``patch`` is not a positive integer, or a side is not positive.

    Example:
        >>> tile_grid(12, 16, 8)
        [(0, 0, 8, 8), (0, 8, 8, 8), (8, 0, 4, 8), (8, 8, 4, 8)]
    """
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)) or patch < 1:
        raise ConfigError(f"region size must be a positive integer number of pixels, got "
                          f"{patch!r}")
    if height < 1 or width < 1:
        raise ConfigError(f"cannot tile an image of {height}x{width} pixels")
    patch = int(patch)
    return [(r, c, min(patch, height - r), min(patch, width - c))
            for r in range(0, height, patch) for c in range(0, width, patch)]


def region_ids(slice_ids: Sequence[str], size: int, patch: int) -> np.ndarray:
    """``[n_slices * n_tiles]`` ids ``"<slice id>@<row>,<col>"``, slice order then row-major."""
    tiles = tile_offsets(size, patch)
    return np.array([f"{sid}@{r},{c}" for sid in slice_ids for r, c, _, _ in tiles], dtype=str)


#: a patch ``(row, col, h, w)`` in pixels
Box = tuple[int, int, int, int]


def crop_patch_mask(arr: np.ndarray, box: Box, slice_shape: tuple[int, int], n_classes: int,
                    where: str) -> np.ndarray:
    """The ``[h, w]`` uint8 label of a patch from a mask of the patch or of its whole slice.

    Args:
        arr: ``[h, w]`` (the patch) or ``[H, W]`` (the slice: only the patch is kept).
        box: ``(row, col, h, w)`` of the patch.
        slice_shape: ``(H, W)``.
        n_classes: class values must be integers ``0..n_classes - 1``.
        where: names the item in error messages.

    Raises:
        DataError: another shape, or values outside the classes (checked on the patch only).
    """
    r, c, h, w = box
    arr = np.asarray(arr)
    if arr.shape == tuple(slice_shape) and (h, w) != tuple(slice_shape):
        arr = arr[r:r + h, c:c + w]
    elif arr.shape != (h, w):
        raise DataError(f"{where}: mask shape {tuple(arr.shape)} matches neither the patch "
                        f"{(h, w)} nor its slice {tuple(slice_shape)}")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)) or np.any(
            arr != np.round(arr)) or (arr.size and (arr.min() < 0 or arr.max() >= n_classes)):
        raise DataError(f"{where}: mask values must be integers 0..{n_classes - 1}")
    return arr.astype(np.uint8)


def assemble_label_map(slice_shape: tuple[int, int], boxes: Sequence[Box],
                       labels: Sequence[np.ndarray]) -> np.ndarray:
    """``[H, W]`` int64 map: each label at its box, :data:`IGNORE_INDEX` elsewhere."""
    out = np.full(tuple(int(v) for v in slice_shape), IGNORE_INDEX, dtype=np.int64)
    for (r, c, h, w), label in zip(boxes, labels, strict=True):
        out[r:r + h, c:c + w] = label
    return out


def slice_label_maps(labeled_idx: np.ndarray, labels: Sequence[Any], boxes: np.ndarray,
                     pool_slices: np.ndarray, slice_shape: Callable[[int], tuple[int, int]],
                     n_classes: int, pool_ids: Sequence[str]
                     ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The label map of every slice holding a labelled patch.

    Args:
        labeled_idx: ``[n]`` patch indices into the pool.
        labels: their masks, each of the patch or of its whole slice (:func:`crop_patch_mask`).
        boxes: ``[n_pool, 4]`` ``(row, col, h, w)`` of every patch.
        pool_slices: ``[n_pool]`` slice index of every patch.
        slice_shape: ``slice index -> (H, W)`` of the maps.
        n_classes: class values must be ``0..n_classes - 1``.
        pool_ids: patch ids, for error messages.

    Returns:
        ``(slice_idx [m] sorted, m maps [H, W] int64)``, :data:`IGNORE_INDEX` outside the
        labelled patches.
    """
    labeled_idx = np.asarray(labeled_idx, dtype=np.int64)
    if len(labels) != labeled_idx.size:
        raise ValueError(f"{labeled_idx.size} labeled indices but {len(labels)} labels")
    per_slice: dict[int, tuple[list[Box], list[np.ndarray]]] = {}
    for i, label in zip(labeled_idx.tolist(), labels, strict=True):
        s = int(pool_slices[i])
        box = tuple(int(v) for v in boxes[i])
        crop = crop_patch_mask(label, box, slice_shape(s), n_classes,
                               f"label of patch {pool_ids[i]!r}")
        patch_boxes, crops = per_slice.setdefault(s, ([], []))
        patch_boxes.append(box)
        crops.append(crop)
    order = sorted(per_slice)
    return (np.array(order, dtype=np.int64),
            [assemble_label_map(slice_shape(s), *per_slice[s]) for s in order])


class RegionSegmentationTask:
    """Patch-wise active learning over a slice task (see the module docstring).

    Args:
        base: the :class:`~medactive.tasks.segmentation.task.SegmentationTask` (data, preset, U-Net,
            3D evaluation).
        region_size: patch side ``P`` in pixels of the resized slice (``1 <= P <= S``).

    Attributes:
        pool_ids: ``[n_slices * n_tiles]`` patch ids.
        pool_slices: ``[n_pool]`` index of each patch's slice in ``base.pool_ids``.
        pool_tiles: ``[n_pool]`` index of each patch in :attr:`tiles`.
        pool_groups: ``[n_pool]`` patient of each patch.
        tiles: ``[n_tiles, 4]`` ``(row, col, height, width)`` of the tiles of one slice.
        region_size: ``P``.

    Other attributes (``volumes``, ``predict_split``, ``classes``, ``preset``, ...) are the base
    task's.
    """

    kind = "segmentation"
    supports_pseudo_labels = False
    primary_metric = "dice_mean"
    #: what one pool item is, for messages and figure titles
    label_unit = "patches"

    def __init__(self, base, region_size: int) -> None:
        self.base = base
        self.image_size = int(base.preset.image_size)
        self.region_size = check_region_size(region_size, self.image_size)
        self.tiles = np.array(tile_offsets(self.image_size, self.region_size), dtype=np.int64)
        n_slices, n_tiles = len(base.pool_ids), len(self.tiles)
        self.pool_ids = region_ids(base.pool_ids, self.image_size, self.region_size)
        self.pool_slices = np.repeat(np.arange(n_slices, dtype=np.int64), n_tiles)
        self.pool_tiles = np.tile(np.arange(n_tiles, dtype=np.int64), n_slices)
        self.pool_groups = np.asarray(base.pool_groups)[self.pool_slices]
        self._tile_pixels = self.tiles[:, 2] * self.tiles[:, 3]
        self.last_fit: FitLog | None = None
        self.last_model: UNet2D | None = None
        logger.info("region pool: %d slices x %d patches of %d px = %d patches",
                    n_slices, n_tiles, self.region_size, len(self.pool_ids))

    def __getattr__(self, name: str) -> Any:
        # only called for attributes this class lacks: volumes, classes, preset, device, ...
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    # ---------------------------------------------------------------- labels
    def pool_labels(self, idx: np.ndarray) -> list[np.ndarray]:
        """Ground truth of patches ``idx``: uint8 crops ``[h, w]`` of the resized slice masks."""
        idx = np.asarray(idx, dtype=np.int64)
        resized: dict[int, np.ndarray] = {}
        out = []
        for i in idx.tolist():
            s = int(self.pool_slices[i])
            if s not in resized:
                full = self.base.pool_labels(np.array([s]))[0]
                resized[s] = resize_masks(torch.from_numpy(full.astype(np.int64))[None],
                                          self.image_size)[0].numpy().astype(np.uint8)
            r, c, h, w = self.tiles[self.pool_tiles[i]]
            out.append(resized[s][r:r + h, c:c + w].copy())
        return out

    def label_maps(self, labeled_idx: np.ndarray, labels: Sequence[Any]
                   ) -> tuple[np.ndarray, torch.Tensor]:
        """Assemble patch labels into label maps of their slices.

        Args:
            labeled_idx: ``[n]`` patch indices.
            labels: ``n`` labels: ``[h, w]`` crops (as :meth:`pool_labels` gives), or ``[S, S]``
                maps of the resized slice (only the patch is read).

        Returns:
            ``(slice_idx [m], maps [m, S, S] int64)``: the sorted slices with a labelled patch
            and their maps, ``IGNORE_INDEX`` outside labelled patches.

        Raises:
            DataError: a label of the wrong shape or with values outside the class set.
        """
        size = self.image_size
        order, maps = slice_label_maps(labeled_idx, labels, self.tiles[self.pool_tiles],
                                       self.pool_slices, lambda s: (size, size),
                                       len(self.base.classes), self.pool_ids)
        stacked = (torch.stack([torch.from_numpy(m) for m in maps]) if maps
                   else torch.zeros(0, size, size, dtype=torch.long))
        return order, stacked

    def label_metrics(self, labeled_idx: np.ndarray) -> dict[str, float]:
        """``labelled_pixel_fraction`` (labelled / all pool pixels at the network size) and
        ``n_labelled_slices`` (slices with at least one labelled patch) of ``labeled_idx``."""
        idx = np.unique(np.asarray(labeled_idx, dtype=np.int64))
        total = len(self.base.pool_ids) * self.image_size ** 2
        pixels = int(self._tile_pixels[self.pool_tiles[idx]].sum())
        return {"labelled_pixel_fraction": pixels / total if total else 0.0,
                "n_labelled_slices": float(np.unique(self.pool_slices[idx]).size)}

    # ---------------------------------------------------------------- Task protocol
    def new_model(self, seed: int) -> UNet2D:
        return self.base.new_model(seed)

    def fit(self, labeled_idx: np.ndarray, labels: list[Any], *, seed: int,
            init_model: UNet2D | None = None) -> UNet2D:
        """Train on the slices with labelled patches, the loss on labelled pixels only.

        Args:
            labeled_idx: ``[n]`` patch indices.
            labels: their labels (see :meth:`label_maps`).
            seed: seeds initialisation, batches, augmentation and dropout.
            init_model: the previous round's model to fine-tune (copied), or ``None``.
        """
        slice_idx, maps = self.label_maps(labeled_idx, labels)
        if not slice_idx.size:
            raise ValueError("no labeled patches to train on")
        images = self.base._pool_images[torch.as_tensor(slice_idx)]
        net = copy.deepcopy(init_model) if init_model is not None else self.new_model(seed)
        net, log = self.base.train_round(net, images, maps, seed=seed, labeled_slices=None)
        self.last_fit, self.last_model = log, net
        self.base.last_fit, self.base.last_model = log, net
        logger.info("trained on %d patches of %d slices: %d steps in %.1fs, best val dice %.4f "
                    "at step %d", np.unique(labeled_idx).size, slice_idx.size, log.iterations,
                    log.seconds, log.best_val, log.best_iteration)
        return net

    def evaluate(self, model: UNet2D, split: str) -> dict[str, float]:
        """The base task's 3D metrics (the test volumes are whole; only training is partial)."""
        return self.base.evaluate(model, split)

    def predictions(self, model: UNet2D, *, seed: int) -> RegionPredictions:
        """Streamed per-patch outputs of ``model`` (see :class:`RegionPredictions`)."""
        return RegionPredictions(self.base.predictions(model, seed=seed), self.tiles,
                                 self.pool_slices, self.pool_tiles)

    def describe(self) -> dict[str, Any]:
        info = self.base.describe()
        info["region"] = {
            "unit": "square patch of the resized slice", "size": self.region_size,
            "image_size": self.image_size, "patches_per_slice": len(self.tiles),
            "n_pool": len(self.pool_ids),
            "uniform": bool(self.image_size % self.region_size == 0),
            "id": "<slice id>@<row>,<col> (pixel offsets in the resized slice)",
            "loss": "Dice + CE on labelled pixels only (medactive.tasks.segmentation.losses)",
            "embeddings": "last decoder features averaged over the patch",
            "budget": "initial and budget count patches; rounds.csv has "
                      "labelled_pixel_fraction and n_labelled_slices",
        }
        return info

    def save_figure(self, model: UNet2D, path, **kwargs):
        return self.base.save_figure(model, path, **kwargs)


class RegionPredictions(Predictions):
    """Per-patch model outputs, streamed over the patches' slices.

    Args:
        slices: the slice-level :class:`~.predictions.SegmentationPredictions` (network,
            resized pool images, reduction, MC settings).
        tiles: ``[n_tiles, 4]`` ``(row, col, height, width)`` of one slice's tiles.
        pool_slices: ``[n_pool]`` slice of each patch.
        pool_tiles: ``[n_pool]`` tile of each patch.

    Memory: one batch of slices (bounded as in :class:`~.predictions.SegmentationPredictions`)
    at a time, plus per-patch results.
    """

    def __init__(self, slices: SegmentationPredictions, tiles: np.ndarray,
                 pool_slices: np.ndarray, pool_tiles: np.ndarray) -> None:
        self.slices = slices
        self.tiles = np.asarray(tiles, dtype=np.int64)
        self.pool_slices = np.asarray(pool_slices, dtype=np.int64)
        self.pool_tiles = np.asarray(pool_tiles, dtype=np.int64)
        self.reduction = slices.reduction
        self._embeddings: dict[int, np.ndarray] = {}

    @property
    def n_mc_samples(self) -> int:  # type: ignore[override]
        return self.slices.n_mc_samples

    @n_mc_samples.setter
    def n_mc_samples(self, value: int) -> None:
        self.slices.n_mc_samples = int(value)

    # ---------------------------------------------------------------- grouping
    def _groups(self, idx: np.ndarray):
        """Unique slices of ``idx`` and, per slice position, the positions in ``idx``."""
        slices = self.pool_slices[idx]
        uniq, inverse = np.unique(slices, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(uniq.size + 1))
        return uniq, inverse, order, bounds

    def _per_batch(self, field: str, idx: np.ndarray):
        """Yield ``(values [b, ...], rows, local)``: a batch of slice outputs, the positions in
        ``idx`` of the patches on those slices, and each one's slice position in the batch."""
        uniq, inverse, order, bounds = self._groups(idx)
        pos = 0
        for _, values in self.slices._batches(field, uniq):
            b = len(values)
            rows = order[bounds[pos]:bounds[pos + b]]
            yield values, rows, inverse[rows] - pos
            pos += b

    # ---------------------------------------------------------------- Predictions API
    def score(self, fn: Callable[[np.ndarray], np.ndarray], field: str, idx: np.ndarray,
              ) -> np.ndarray:
        """Patch scores ``[n]``: ``fn`` per pixel on ``field``, reduced over each patch.

        Args:
            fn: ``[b, c, h, w]`` (``"probas"``) or ``[b, c, h, w, t]`` (``"mc_probas"``) →
                ``[b, h, w]`` pixel scores.
            field: ``"probas"`` or ``"mc_probas"``.
            idx: ``[n]`` pool-absolute patch indices.

        Raises:
            ConfigError: ``fn`` gives one score per slice, which cannot be split into patches.
        """
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty(idx.size, dtype=np.float64)
        for values, rows, local in self._per_batch(field, idx):
            pixel = np.asarray(fn(values), dtype=np.float64)
            if pixel.ndim < 3:
                raise ConfigError("this score gives one value per slice; region-based AL needs "
                                  "pixel-wise scores to reduce per patch")
            foreground = None
            if self.reduction == "foreground":
                background = values[:, 0].mean(axis=-1) if field == "mc_probas" else values[:, 0]
                foreground = (1.0 - background).reshape(
                    background.shape[0], *([1] * (pixel.ndim - 3)), *background.shape[-2:])
            tiles = self.pool_tiles[idx[rows]]
            for t in np.unique(tiles).tolist():
                sel = tiles == t
                r, c, h, w = self.tiles[t]
                crop = pixel[local[sel]][..., r:r + h, c:c + w]
                fg = None if foreground is None else foreground[local[sel]][..., r:r + h,
                                                                            c:c + w]
                out[rows[sel]] = reduce_pixels(crop, self.reduction, fg)
        return out

    def get(self, field: str, idx: np.ndarray) -> np.ndarray:
        """``"embeddings"`` ``[n, d]`` (decoder features averaged over each patch); dense
        ``"probas"`` ``[n, c, P, P]`` / ``"mc_probas"`` ``[n, c, P, P, t]`` crops (only when
        every patch has the same size).

        Raises:
            ConfigError: dense crops of patches of different sizes.
        """
        idx = np.asarray(idx, dtype=np.int64)
        if field == "embeddings":
            return self._get_embeddings(idx)
        if field not in FIELDS:
            raise KeyError(f"unknown prediction field {field!r}; known: {', '.join(FIELDS)}")
        sizes = {(int(h), int(w)) for _, _, h, w in self.tiles}
        if len(sizes) > 1:
            raise ConfigError(f"dense {field!r} per patch needs equal patches; the region size "
                              "does not divide the image size (use a divisor)")
        (h, w), = sizes
        c = self.slices.net.n_classes
        t = (self.n_mc_samples,) if field == "mc_probas" else ()
        out = np.zeros((idx.size, c, h, w, *t), dtype=np.float32)
        for values, rows, local in self._per_batch(field, idx):
            for row, loc in zip(rows.tolist(), local.tolist(), strict=True):
                r, col = self.tiles[self.pool_tiles[idx[row]], :2]
                if field == "mc_probas":
                    out[row] = values[loc, :, r:r + h, col:col + w, :]
                else:
                    out[row] = values[loc, :, r:r + h, col:col + w]
        return out

    @torch.no_grad()
    def _get_embeddings(self, idx: np.ndarray) -> np.ndarray:
        net = self.slices.net
        d = net.channels[0]
        missing = np.unique([i for i in idx.tolist() if i not in self._embeddings])
        if missing.size:
            net.eval()
            uniq = np.unique(self.pool_slices[missing])
            chunk = self.slices._chunk("probas")
            n_tiles = len(self.tiles)
            for start in range(0, uniq.size, chunk):
                batch = uniq[start:start + chunk]
                x = self.slices.images[torch.as_tensor(batch)].to(self.slices.device)
                _, feats, _ = net.features(x)
                for t, (r, c, h, w) in enumerate(self.tiles.tolist()):
                    pooled = feats[:, :, r:r + h, c:c + w].mean(dim=(2, 3))
                    pooled = pooled.cpu().numpy().astype(np.float64)
                    for s, row in zip(batch.tolist(), pooled, strict=True):
                        self._embeddings[s * n_tiles + t] = row
        if idx.size == 0:
            return np.zeros((0, d))
        return np.stack([self._embeddings[i] for i in idx.tolist()])

    def gradient_embeddings_array(self, idx: np.ndarray) -> np.ndarray:
        """BADGE gradients ``[n, c * d]`` of each patch's own Dice + CE loss at its argmax
        pseudo-label w.r.t. the final 1×1 convolution's weights (``d`` = its input channels)."""
        idx = np.asarray(idx, dtype=np.int64)
        net = self.slices.net
        c, d = net.n_classes, net.channels[0]
        out = np.zeros((idx.size, c * d), dtype=np.float64)
        net.eval()
        uniq, inverse, order, bounds = self._groups(idx)
        chunk = self.slices._chunk("probas")
        for start in range(0, uniq.size, chunk):
            batch = uniq[start:start + chunk]
            x = self.slices.images[torch.as_tensor(batch)].to(self.slices.device)
            with torch.no_grad():
                logits, feats, _ = net.features(x)
            z = logits.detach().requires_grad_(True)
            tiles = self.tiles.tolist()
            with torch.enable_grad():
                # tiles do not overlap: the gradient on a tile's pixels is that of its own loss
                loss = sum(dice_ce_per_sample(z[:, :, r:r + h, q:q + w],
                                              z[:, :, r:r + h, q:q + w].argmax(dim=1)).sum()
                           for r, q, h, w in tiles)
                (grad,) = torch.autograd.grad(loss, z)
            rows = order[bounds[start]:bounds[start + len(batch)]]
            local = inverse[rows] - start
            for row, loc in zip(rows.tolist(), local.tolist(), strict=True):
                r, q, h, w = tiles[int(self.pool_tiles[idx[row]])]
                emb = torch.einsum("chw,dhw->cd", grad[loc, :, r:r + h, q:q + w],
                                   feats[loc, :, r:r + h, q:q + w])
                out[row] = emb.reshape(c * d).cpu().numpy()
        return out

    def gradient_embedding(self, idx: np.ndarray):
        """BADGE's embedding of patches ``idx`` as a ``DenseEmbedding`` ``[n, c * d]``."""
        from medactive.selection.embedding import DenseEmbedding

        return DenseEmbedding(self.gradient_embeddings_array(idx))
