"""Region-based active learning: the labelling unit is a square patch of a slice (survey §4.3.1).

Labelling whole slices spends budget on large, easy structures; labelling patches lets the
budget go where the model is unsure (Mackowiak et al. 2018; Xu et al. 2021).
:class:`RegionSegmentationTask` wraps a :class:`~medactive.tasks.segmentation.task.SegmentationTask`
and changes only the pool, a :class:`RegionPool` of patches that knows its coordinate frame:

- **Frames.** In the ``"network"`` frame (``medactive run --region-size P``,
  :meth:`RegionPool.tiled`) patches tile every training slice *resized to the preset's
  ``image_size`` ``S``* as training sees it. In the ``"original"`` frame (annotation projects,
  :mod:`medactive.project.regions`) they tile each slice at its stored size ``H × W``, where
  the expert draws. Both tile row-major at offsets ``0, P, 2P, ...``; when ``P`` does not
  divide a side the last row and column of patches are narrower, so every pixel belongs to
  exactly one patch. Patch ids are ``"<slice id>@<row>,<col>"`` (:func:`patch_id`) with
  ``row, col`` the pixel offsets in the frame; pools list them in slice order, then row-major.
- **Oracle.** :meth:`~RegionSegmentationTask.pool_labels` reveals a patch's mask only: a label
  is the ``[h, w]`` uint8 crop of the ground truth in the frame (crops keep the labels of a
  large pool small). :meth:`~RegionSegmentationTask.label_maps` assembles them into maps of the
  frame's slice size with :data:`~.losses.IGNORE_INDEX` elsewhere and resizes those (nearest
  neighbour: the ignore marker moves with the labels) to ``[S, S]``.
- **Training.** The same U-Net and preset train on every slice with at least one labelled
  patch; the loss is :func:`~.losses.partial_dice_ce` (cross-entropy and Dice on labelled pixels
  only), and augmentation moves the unlabelled marker with the labels.
- **Scores.** :class:`RegionPredictions` streams the network over the slices of the asked
  patches, brings each pixel score map to the frame (the original frame: bilinear resize) and
  reduces it per patch with the task's reduction (``mean``, ``max``, ``foreground``), so every
  uncertainty strategy works unchanged. Embeddings (Core-Set, TypiClust) are the last decoder
  features averaged over the patch's box on the network input, ``[n, d]`` with ``d`` the first
  U-Net level's channels (so two patches of a slice differ); BADGE's gradient embedding is that
  of the Dice + CE loss of the patch alone at its argmax pseudo-label.
- **Budget.** The loop counts pool items, so ``initial`` and ``budget`` count patches.
  :meth:`~RegionSegmentationTask.label_metrics` gives ``labelled_pixel_fraction`` (labelled
  pixels / pool pixels, in the frame) and ``n_labelled_slices``;
  :func:`medactive.experiment.run_experiment` adds them to every round's metrics.

Equivalent budgets: a slice has ``S²`` pixels, so ``b`` slices spend the pixels of
``b * S² / P²`` patches when ``P`` divides ``S`` (e.g. ``S = 64``, ``P = 16``: 16 patches a
slice).

Example:
    >>> tile_offsets(8, 4)
    [(0, 0, 4, 4), (0, 4, 4, 4), (4, 0, 4, 4), (4, 4, 4, 4)]
    >>> region_ids(["s1"], 8, 4).tolist()
    ['s1@0,0', 's1@0,4', 's1@4,0', 's1@4,4']
    >>> split_patch_id("case0/1@8,0")
    ('case0/1', 8, 0)

References:
    Mackowiak et al., "CEREALS - Cost-Effective REgion-based Active Learning for Semantic
    Segmentation", BMVC 2018. Xu et al., "Patch-wise active learning for retinal vessel
    segmentation", 2021 (survey §4.3.1).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medactive.errors import ConfigError, DataError
from medactive.predictions import FIELDS, SCORE_FIELDS, Predictions
from medactive.tasks.segmentation.losses import IGNORE_INDEX
from medactive.tasks.segmentation.predictions import (
    SegmentationPredictions,
    dice_ce_per_sample,
    reduce_pixels,
)
from medactive.tasks.segmentation.train import FitLog, resize_masks
from medactive.tasks.segmentation.unet import UNet2D

logger = logging.getLogger(__name__)

__all__ = ["FRAMES", "RegionPool", "RegionPredictions", "RegionSegmentationTask",
           "check_region_size", "map_boxes", "patch_id", "region_ids", "split_patch_id",
           "tile_grid", "tile_offsets"]

#: coordinate frames of a region pool's boxes (see :class:`RegionPool`)
FRAMES = ("network", "original")


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


def patch_id(slice_id: str, row: int, col: int) -> str:
    """The id ``"<slice id>@<row>,<col>"`` of the patch at pixel offsets ``(row, col)``."""
    return f"{slice_id}@{int(row)},{int(col)}"


def split_patch_id(sample_id: str) -> tuple[str, int, int]:
    """``(slice id, row, col)`` of a patch id (the slice id may itself hold ``@``).

    Raises:
        DataError: not a patch id.
    """
    slice_id, sep, offsets = sample_id.rpartition("@")
    row, comma, col = offsets.partition(",")
    if not sep or not slice_id or not comma or not row.isdigit() or not col.isdigit():
        raise DataError(f"{sample_id!r} is not a patch id '<slice id>@<row>,<col>'")
    return slice_id, int(row), int(col)


def region_ids(slice_ids: Sequence[str], size: int, patch: int) -> np.ndarray:
    """``[n_slices * n_tiles]`` ids ``"<slice id>@<row>,<col>"``, slice order then row-major."""
    tiles = tile_offsets(size, patch)
    return np.array([patch_id(sid, r, c) for sid in slice_ids for r, c, _, _ in tiles],
                    dtype=str)


def map_boxes(boxes: np.ndarray, shapes: np.ndarray, size: int) -> np.ndarray:
    """``[n, 4]`` boxes ``(row, col, h, w)`` of ``[n, 4]`` boxes in slices of ``[n, 2]``
    shapes ``(H, W)``, mapped to the ``size × size`` network input (at least one pixel; the
    boxes of slices already ``size × size`` are unchanged).

    Example:
        >>> map_boxes(np.array([[8, 0, 4, 8]]), np.array([[12, 16]]), 32).tolist()
        [[21, 0, 11, 16]]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    shapes = np.asarray(shapes, dtype=np.float64).reshape(-1, 2)
    out = np.zeros(boxes.shape, dtype=np.int64)
    for axis, (start, extent) in enumerate(((0, 2), (1, 3))):
        scale = size / shapes[:, axis]
        lo = np.floor(boxes[:, start] * scale).astype(np.int64).clip(0, size - 1)
        hi = np.ceil((boxes[:, start] + boxes[:, extent]) * scale).astype(np.int64)
        hi = np.maximum(hi.clip(max=size), lo + 1)
        out[:, start], out[:, extent] = lo, hi - lo
    return out


def resize_scores(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``[..., S, S]`` pixel maps resized (bilinear) to ``[..., H, W]``; as they are when the
    shape already matches."""
    if tuple(arr.shape[-2:]) == tuple(shape):
        return arr
    lead = arr.shape[:-2]
    t = torch.from_numpy(np.array(arr, dtype=np.float64).reshape(1, -1, *arr.shape[-2:]))
    out = F.interpolate(t, size=tuple(int(v) for v in shape), mode="bilinear",
                        align_corners=False)
    return out.numpy().reshape(*lead, *shape)


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


@dataclass(frozen=True, eq=False)
class RegionPool:
    """The patches of a slice pool and the coordinate frame their boxes are in.

    ``frame="network"``: boxes on each slice resized to the ``S × S`` network input, as
    training sees it (simulated runs; :meth:`tiled`). ``frame="original"``: boxes on each slice
    at its stored ``H × W`` (annotation projects); pixel scores are resized to ``H × W`` before
    the per-patch reduction and label maps are resized from it, while embeddings and gradients
    use :attr:`network_boxes`. A network-frame pool is an original-frame pool whose slices are
    all ``S × S``: both give the same patches, scores and selections.

    Args:
        ids: ``[n]`` patch ids in pool order.
        slices: ``[n]`` index of each patch's slice in the base task's ``pool_ids``.
        boxes: ``[n, 4]`` ``(row, col, h, w)`` of each patch in the frame.
        slice_shapes: ``[n_slices, 2]`` ``(H, W)`` of every base slice in the frame (all
            ``(S, S)`` in the network frame).
        frame: one of :data:`FRAMES`.
        network_size: ``S``, the preset's ``image_size``.
        region_size: ``P``, the patch side in pixels of the frame.

    Attributes:
        network_boxes: ``[n, 4]`` the boxes on the ``S × S`` input (:func:`map_boxes`; the
            boxes themselves in the network frame).

    Raises:
        ValueError: arrays of different lengths, an unknown frame, or network-frame slices that
            are not ``S × S``.

    Example:
        >>> pool = RegionPool.tiled(["a"], 8, 4)
        >>> pool.ids.tolist(), pool.boxes[1].tolist(), pool.frame
        (['a@0,0', 'a@0,4', 'a@4,0', 'a@4,4'], [0, 4, 4, 4], 'network')
    """

    ids: np.ndarray
    slices: np.ndarray
    boxes: np.ndarray
    slice_shapes: np.ndarray
    frame: str
    network_size: int
    region_size: int
    network_boxes: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)
        put("ids", np.asarray(self.ids, dtype=str).reshape(-1))
        put("slices", np.asarray(self.slices, dtype=np.int64).reshape(-1))
        put("boxes", np.asarray(self.boxes, dtype=np.int64).reshape(-1, 4))
        put("slice_shapes", np.asarray(self.slice_shapes, dtype=np.int64).reshape(-1, 2))
        put("network_size", int(self.network_size))
        put("region_size", int(self.region_size))
        if self.frame not in FRAMES:
            raise ValueError(f"unknown region frame {self.frame!r}; known: {', '.join(FRAMES)}")
        if not len(self.ids) == len(self.slices) == len(self.boxes):
            raise ValueError("patch ids, slices and boxes must have the same length")
        if self.slices.size and not 0 <= self.slices.min() <= self.slices.max() < len(
                self.slice_shapes):
            raise ValueError("a patch names a slice without a shape")
        size = self.network_size
        if self.frame == "network" and (self.slice_shapes != size).any():
            raise ValueError(f"network-frame slices are {size}x{size}")
        put("network_boxes", self.boxes if self.frame == "network" else map_boxes(
            self.boxes, self.slice_shapes[self.slices], size))

    @classmethod
    def tiled(cls, slice_ids: Sequence[str], network_size: int, region_size: int
              ) -> RegionPool:
        """The network-frame pool: each slice's ``S × S`` input tiled by :func:`tile_offsets`.

        Raises:
            ConfigError: ``region_size`` outside ``[1, network_size]``.
        """
        size = int(network_size)
        tiles = np.array(tile_offsets(size, check_region_size(region_size, size)),
                         dtype=np.int64)
        n_slices = len(slice_ids)
        return cls(ids=region_ids(slice_ids, size, region_size),
                   slices=np.repeat(np.arange(n_slices, dtype=np.int64), len(tiles)),
                   boxes=np.tile(tiles, (n_slices, 1)),
                   slice_shapes=np.full((n_slices, 2), size, dtype=np.int64),
                   frame="network", network_size=size, region_size=region_size)

    @property
    def n_slices(self) -> int:
        return len(self.slice_shapes)

    def slice_shape(self, s: int) -> tuple[int, int]:
        """``(H, W)`` of slice ``s`` in the frame."""
        return int(self.slice_shapes[s, 0]), int(self.slice_shapes[s, 1])

    def to_frame(self, pixel: np.ndarray, s: int) -> np.ndarray:
        """``[..., S, S]`` pixel scores of slice ``s`` in the frame, ``[..., H, W]``."""
        return resize_scores(pixel, self.slice_shape(s))

    def frame_mask(self, mask: np.ndarray) -> np.ndarray:
        """A slice's ``[H, W]`` ground truth as uint8 in the frame (the network frame: resized,
        nearest neighbour, to ``[S, S]``)."""
        if self.frame == "network":
            mask = resize_masks(torch.from_numpy(np.asarray(mask).astype(np.int64))[None],
                                self.network_size)[0].numpy()
        return np.asarray(mask).astype(np.uint8)

    def describe(self) -> dict[str, Any]:
        size, patch = self.network_size, self.region_size
        if self.frame == "original":
            return {
                "unit": "square patch of the slice at its original resolution",
                "size": patch, "n_pool": len(self.ids),
                "id": "<slice id>@<row>,<col> (pixel offsets in the original slice)",
                "training": "original-size partial label maps resized (nearest) to the network "
                            "size; Dice + CE on labelled pixels only",
                "scores": "pixel scores resized (bilinear) to the original size, reduced per "
                          "patch",
            }
        return {
            "unit": "square patch of the resized slice", "size": patch,
            "image_size": size, "patches_per_slice": len(self.ids) // max(self.n_slices, 1),
            "n_pool": len(self.ids), "uniform": bool(size % patch == 0),
            "id": "<slice id>@<row>,<col> (pixel offsets in the resized slice)",
            "loss": "Dice + CE on labelled pixels only (medactive.tasks.segmentation.losses)",
            "embeddings": "last decoder features averaged over the patch",
            "budget": "initial and budget count patches; rounds.csv has "
                      "labelled_pixel_fraction and n_labelled_slices",
        }


class RegionSegmentationTask:
    """Patch-wise active learning over a slice task (see the module docstring).

    Args:
        base: the :class:`~medactive.tasks.segmentation.task.SegmentationTask` (data, preset,
            U-Net, 3D evaluation).
        region_size: patch side ``P`` in pixels of the resized slice (``1 <= P <= S``): the
            network-frame pool :meth:`RegionPool.tiled` of the base's slices.
        pool: instead of ``region_size``, a :class:`RegionPool` over the base's slices (an
            annotation project's original-frame patches).

    Attributes:
        pool: the :class:`RegionPool`.
        pool_ids: ``[n_pool]`` patch ids.
        pool_slices: ``[n_pool]`` index of each patch's slice in ``base.pool_ids``.
        pool_groups: ``[n_pool]`` patient of each patch.
        region_size: ``P``.

    Other attributes (``volumes``, ``predict_split``, ``classes``, ``preset``, ...) are the base
    task's.

    Raises:
        ConfigError: ``region_size`` outside ``[1, S]``.
        ValueError: neither or both of ``region_size`` and ``pool``, or a pool over other slices.
    """

    kind = "segmentation"
    supports_pseudo_labels = False
    primary_metric = "dice_mean"
    #: what one pool item is, for messages and figure titles
    label_unit = "patches"

    def __init__(self, base, region_size: int | None = None, *,
                 pool: RegionPool | None = None) -> None:
        if (region_size is None) == (pool is None):
            raise ValueError("give the region size or the region pool, not both or neither")
        self.base = base
        self.image_size = int(base.preset.image_size)
        if pool is None:
            pool = RegionPool.tiled(base.pool_ids, self.image_size, region_size)
        if pool.network_size != self.image_size or pool.n_slices != len(base.pool_ids):
            raise ValueError(f"the region pool is over {pool.n_slices} slices of a "
                             f"{pool.network_size}-pixel network; the task has "
                             f"{len(base.pool_ids)} slices and image_size {self.image_size}")
        self.pool = pool
        self.region_size = pool.region_size
        self.pool_ids = pool.ids
        self.pool_slices = pool.slices
        self.pool_groups = np.asarray(base.pool_groups)[self.pool_slices]
        self.last_fit: FitLog | None = None
        self.last_model: UNet2D | None = None
        logger.info("region pool: %d slices, %d patches of %d px (%s frame)",
                    pool.n_slices, len(self.pool_ids), self.region_size, pool.frame)

    def __getattr__(self, name: str) -> Any:
        # only called for attributes this class lacks: volumes, classes, preset, device, ...
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    # ---------------------------------------------------------------- labels
    def pool_labels(self, idx: np.ndarray) -> list[np.ndarray]:
        """Ground truth of patches ``idx``: uint8 crops ``[h, w]`` of the slice masks in the
        pool's frame."""
        idx = np.asarray(idx, dtype=np.int64)
        framed: dict[int, np.ndarray] = {}
        out = []
        for i in idx.tolist():
            s = int(self.pool_slices[i])
            if s not in framed:
                framed[s] = self.pool.frame_mask(self.base.pool_labels(np.array([s]))[0])
            r, c, h, w = self.pool.boxes[i]
            out.append(framed[s][r:r + h, c:c + w].copy())
        return out

    def label_maps(self, labeled_idx: np.ndarray, labels: Sequence[Any]
                   ) -> tuple[np.ndarray, torch.Tensor]:
        """Assemble patch labels into network-size label maps of their slices.

        Args:
            labeled_idx: ``[n]`` patch indices.
            labels: ``n`` labels: ``[h, w]`` crops (as :meth:`pool_labels` gives), or maps of
                the whole slice in the frame (only the patch is read).

        Returns:
            ``(slice_idx [m], maps [m, S, S] int64)``: the sorted slices with a labelled patch
            and their maps, ``IGNORE_INDEX`` outside labelled patches (maps of the original
            frame resized with nearest neighbour).

        Raises:
            DataError: a label of the wrong shape or with values outside the class set.
        """
        order, maps = slice_label_maps(labeled_idx, labels, self.pool.boxes, self.pool_slices,
                                       self.pool.slice_shape, len(self.base.classes),
                                       self.pool_ids)
        size = self.image_size
        resized = [resize_masks(torch.from_numpy(m)[None], size)[0] for m in maps]
        stacked = (torch.stack(resized) if resized
                   else torch.zeros(0, size, size, dtype=torch.long))
        return order, stacked

    def label_metrics(self, labeled_idx: np.ndarray) -> dict[str, float]:
        """``labelled_pixel_fraction`` (labelled / all pool pixels, in the frame) and
        ``n_labelled_slices`` (slices with at least one labelled patch) of ``labeled_idx``."""
        idx = np.unique(np.asarray(labeled_idx, dtype=np.int64))
        total = int(self.pool.slice_shapes.prod(axis=1).sum())
        boxes = self.pool.boxes[idx]
        pixels = int((boxes[:, 2] * boxes[:, 3]).sum())
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
        return RegionPredictions(self.base.predictions(model, seed=seed), self.pool)

    def describe(self) -> dict[str, Any]:
        info = self.base.describe()
        info["region"] = self.pool.describe()
        return info

    def save_figure(self, model: UNet2D, path, **kwargs):
        return self.base.save_figure(model, path, **kwargs)


class RegionPredictions(Predictions):
    """Per-patch model outputs, streamed over the patches' slices.

    Args:
        slices: the slice-level :class:`~.predictions.SegmentationPredictions` (network,
            resized pool images, reduction, MC settings).
        pool: the :class:`RegionPool` (boxes and their frame).

    :meth:`score` brings each slice's ``[S, S]`` pixel scores to the frame
    (:meth:`RegionPool.to_frame`) and reduces them over each patch; dense :meth:`get` crops,
    embeddings and BADGE gradients use :attr:`RegionPool.network_boxes`. Memory: one batch of
    slices (bounded as in :class:`~.predictions.SegmentationPredictions`) and one score map in
    the frame at a time, plus per-patch results.
    """

    def __init__(self, slices: SegmentationPredictions, pool: RegionPool) -> None:
        self.slices = slices
        self.pool = pool
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
        slices = self.pool.slices[idx]
        uniq, inverse = np.unique(slices, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(uniq.size + 1))
        return uniq, inverse, order, bounds

    def _per_batch(self, field: str, idx: np.ndarray):
        """Yield ``(values [b, ...], rows, local)``: a batch of slice outputs, the positions in
        ``idx`` of the patches on those slices, and each one's slice position in the batch."""
        if field == "tta_probas":
            raise ConfigError("tta_kl scores whole slices; region queries (--region-size) do "
                              "not support it")
        uniq, inverse, order, bounds = self._groups(idx)
        pos = 0
        for _, values in self.slices._batches(field, uniq):
            b = len(values)
            rows = order[bounds[pos]:bounds[pos + b]]
            yield values, rows, inverse[rows] - pos
            pos += b

    def _slice_batches(self, idx: np.ndarray):
        """Yield ``(slice_idx [b], x [b, 1, S, S], rows, local)`` over the slices of patches
        ``idx``, in the batches of ``"probas"``."""
        uniq, inverse, order, bounds = self._groups(idx)
        chunk = self.slices._chunk("probas")
        for start in range(0, uniq.size, chunk):
            batch = uniq[start:start + chunk]
            x = self.slices.images[torch.as_tensor(batch)].to(self.slices.device)
            rows = order[bounds[start]:bounds[start + len(batch)]]
            yield batch, x, rows, inverse[rows] - start

    def _by_box(self, boxes: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        """``[(box, positions)]``: the distinct rows of ``[m, 4]`` ``boxes`` and where each is."""
        uniq, inverse = np.unique(boxes.reshape(-1, 4), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        return [(tuple(int(v) for v in box), np.flatnonzero(inverse == k))
                for k, box in enumerate(uniq)]

    # ---------------------------------------------------------------- Predictions API
    def score(self, fn: Callable[[np.ndarray], np.ndarray], field: str, idx: np.ndarray,
              ) -> np.ndarray:
        """Patch scores ``[n]``: ``fn`` per pixel on ``field``, in the pool's frame, reduced
        over each patch.

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
                foreground = 1.0 - background
            for j in np.unique(local).tolist():
                members = rows[local == j]
                s = int(self.pool.slices[idx[members[0]]])
                framed = self.pool.to_frame(pixel[j], s)
                fg = None if foreground is None else self.pool.to_frame(foreground[j], s)
                # patches of one size are reduced together (at most four sizes a slice)
                boxes = self.pool.boxes[idx[members]]
                for size in np.unique(boxes[:, 2:], axis=0):
                    same = members[(boxes[:, 2:] == size).all(axis=1)]
                    frame_boxes = self.pool.boxes[idx[same]].tolist()
                    crop = np.stack([framed[..., r:r + h, c:c + w]
                                     for r, c, h, w in frame_boxes])
                    weights = None if fg is None else np.stack(
                        [fg[r:r + h, c:c + w] for r, c, h, w in frame_boxes]).reshape(
                            len(same), *([1] * (crop.ndim - 3)), *crop.shape[-2:])
                    out[same] = reduce_pixels(crop, self.reduction, weights)
        return out

    def get(self, field: str, idx: np.ndarray) -> np.ndarray:
        """``"embeddings"`` ``[n, d]`` (decoder features averaged over each patch); dense
        ``"probas"`` ``[n, c, P, P]`` / ``"mc_probas"`` ``[n, c, P, P, t]`` crops on the
        network input (only when every patch has the same size there).

        Raises:
            ConfigError: dense crops of patches of different sizes.
        """
        idx = np.asarray(idx, dtype=np.int64)
        if field == "embeddings":
            return self._get_embeddings(idx)
        if field in SCORE_FIELDS:
            raise ConfigError(f"{field!r} (dal / vaal) is not available for region queries; "
                              "use it on whole slices")
        if field not in FIELDS:
            raise KeyError(f"unknown prediction field {field!r}; known: {', '.join(FIELDS)}")
        boxes = self.pool.network_boxes
        sizes = {(int(h), int(w)) for h, w in np.unique(boxes[:, 2:], axis=0)}
        if len(sizes) > 1:
            raise ConfigError(f"dense {field!r} per patch needs equal patches; the region size "
                              "does not divide the image size (use a divisor)")
        (h, w), = sizes
        c = self.slices.net.n_classes
        t = (self.n_mc_samples,) if field == "mc_probas" else ()
        out = np.zeros((idx.size, c, h, w, *t), dtype=np.float32)
        for values, rows, local in self._per_batch(field, idx):
            for row, loc in zip(rows.tolist(), local.tolist(), strict=True):
                r, col = boxes[idx[row], :2]
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
            # every patch of a slice whose features are computed is kept: one pass a slice
            wanted = np.flatnonzero(np.isin(self.pool.slices, self.pool.slices[missing]))
            boxes = self.pool.network_boxes
            for _, x, rows, local in self._slice_batches(wanted):
                _, feats, _ = net.features(x)
                for (r, c, h, w), where in self._by_box(boxes[wanted[rows]]):
                    pooled = feats[:, :, r:r + h, c:c + w].mean(dim=(2, 3))
                    pooled = pooled.cpu().numpy().astype(np.float64)
                    for row, loc in zip(rows[where].tolist(), local[where].tolist(),
                                        strict=True):
                        self._embeddings[int(wanted[row])] = pooled[loc]
        if idx.size == 0:
            return np.zeros((0, d))
        return np.stack([self._embeddings[i] for i in idx.tolist()])

    def gradient_embeddings_array(self, idx: np.ndarray) -> np.ndarray:
        """BADGE gradients ``[n, c * d]`` of each patch's own Dice + CE loss (on its box on the
        network input) at its argmax pseudo-label w.r.t. the final 1×1 convolution's weights
        (``d`` = its input channels)."""
        idx = np.asarray(idx, dtype=np.int64)
        net = self.slices.net
        c, d = net.n_classes, net.channels[0]
        out = np.zeros((idx.size, c * d), dtype=np.float64)
        net.eval()
        boxes = self.pool.network_boxes
        for _, x, rows, local in self._slice_batches(idx):
            with torch.no_grad():
                logits, feats, _ = net.features(x)
            # one loss a box: mapped boxes of neighbouring original patches may share pixels
            for (r, q, h, w), where in self._by_box(boxes[idx[rows]]):
                z = logits[:, :, r:r + h, q:q + w].detach().requires_grad_(True)
                with torch.enable_grad():
                    loss = dice_ce_per_sample(z, z.argmax(dim=1)).sum()
                    (grad,) = torch.autograd.grad(loss, z)
                for row, loc in zip(rows[where].tolist(), local[where].tolist(), strict=True):
                    emb = torch.einsum("chw,dhw->cd", grad[loc], feats[loc, :, r:r + h, q:q + w])
                    out[row] = emb.reshape(c * d).cpu().numpy()
        return out

    def gradient_embedding(self, idx: np.ndarray):
        """BADGE's embedding of patches ``idx`` as a ``DenseEmbedding`` ``[n, c * d]``."""
        from medactive.selection.embedding import DenseEmbedding

        return DenseEmbedding(self.gradient_embeddings_array(idx))
