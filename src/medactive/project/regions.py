"""Region-based labelling in segmentation projects: the query unit is a patch (survey §4.3.1).

``medactive project init DIR --task segmentation --region-size P`` makes every pool slice
``P × P`` patches *at the slice's original resolution* (the expert draws on the real image):
``H × W`` is tiled row-major from the top-left corner at offsets ``0, P, 2P, ...``, the last
row/column of patches narrower when ``P`` does not divide the side (:func:`patch_boxes`).

- **Samples.** Each patch is a pool sample of the store, id ``"<slice id>@<row>,<col>"`` (pixel
  offsets in the original slice), with the slice's path, frame and hash; val/test volumes stay
  whole. So queries, leases, statuses, label history and imports work per patch unchanged.
- **Labels.** A patch's label is a ``[h, w]`` mask of the patch alone (``masks/<hash>.png``).
  An upload or imported file may be that, or a whole-slice ``[H, W]`` mask of which only the
  patch is kept (:func:`crop_patch_mask`). Masks present at ``init`` (and whole-slice masks
  imported by slice id) label every patch of their slices: those slices count as fully
  labelled.
- **Training.** :class:`ProjectRegionTask` reuses
  :class:`~medactive.tasks.segmentation.regions.RegionSegmentationTask`'s training: each slice with a
  labelled patch gets an original-size map with :data:`~medactive.tasks.segmentation.losses.IGNORE_INDEX`
  outside its labelled patches, resized to the preset's image size with nearest neighbour
  (the ignore marker moves with the labels, so the labelled mask is resized with the map), and
  the U-Net trains with :func:`~medactive.tasks.segmentation.losses.partial_dice_ce`.
- **Scores.** The network's per-pixel scores at training resolution are resized (bilinear) to
  each slice's original size and reduced over the original patches with the task's reduction
  (:class:`OriginalPatchPredictions`), one batch of slices at a time. Embeddings (Core-Set,
  TypiClust) and BADGE gradients use the patch's box mapped to training resolution.

Example:
    >>> patch_boxes(12, 16, 8)
    [(0, 0, 8, 8), (0, 8, 8, 8), (8, 0, 4, 8), (8, 8, 4, 8)]
    >>> patch_id("case0/1", 8, 0), split_patch_id("case0/1@8,0")
    ('case0/1@8,0', ('case0/1', 8, 0))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medactive.errors import ConfigError, DataError
from medactive.tasks.segmentation.predictions import dice_ce_per_sample, reduce_pixels
from medactive.tasks.segmentation.regions import (
    Box,
    RegionPredictions,
    RegionSegmentationTask,
    crop_patch_mask,
    slice_label_maps,
    tile_grid,
)
from medactive.tasks.segmentation.train import resize_masks

logger = logging.getLogger(__name__)

__all__ = ["OriginalPatchPredictions", "ProjectRegionTask", "check_patch_size",
           "crop_patch_mask", "patch_box", "patch_boxes", "patch_id", "split_patch_id"]


def check_patch_size(region_size: Any) -> int:
    """``region_size`` as a positive int (pixels of the original slice).

    Raises:
        ConfigError: not a positive integer.
    """
    if isinstance(region_size, bool) or not isinstance(region_size, (int, np.integer)) or (
            int(region_size) < 1):
        raise ConfigError(f"--region-size must be a positive integer number of pixels, got "
                          f"{region_size!r}")
    return int(region_size)


def patch_boxes(height: int, width: int, patch: int) -> list[Box]:
    """``(row, col, h, w)`` of the patches of an ``height × width`` slice, row-major (see
    :func:`~medactive.tasks.segmentation.regions.tile_grid`)."""
    return tile_grid(int(height), int(width), check_patch_size(patch))


def patch_id(slice_id: str, row: int, col: int) -> str:
    """The sample id of the patch at ``(row, col)`` of slice ``slice_id``."""
    return f"{slice_id}@{int(row)},{int(col)}"


def split_patch_id(sample_id: str) -> tuple[str, int, int]:
    """``(slice id, row, col)`` of a patch id.

    Raises:
        DataError: not a patch id.
    """
    slice_id, sep, offsets = sample_id.rpartition("@")
    row, comma, col = offsets.partition(",")
    if not sep or not slice_id or not comma or not row.isdigit() or not col.isdigit():
        raise DataError(f"{sample_id!r} is not a patch id '<slice id>@<row>,<col>'")
    return slice_id, int(row), int(col)


def patch_box(sample_id: str, slice_shape: tuple[int, int], patch: int) -> Box:
    """``(row, col, h, w)`` of patch ``sample_id`` in a slice of ``slice_shape`` ``(H, W)``.

    Raises:
        DataError: the offsets are not on the patch grid of the slice.
    """
    _, row, col = split_patch_id(sample_id)
    height, width = (int(v) for v in slice_shape)
    if row % patch or col % patch or row >= height or col >= width:
        raise DataError(f"{sample_id!r}: offsets ({row}, {col}) are not a patch of size {patch} "
                        f"of a {height}x{width} slice")
    return row, col, min(patch, height - row), min(patch, width - col)


def expand_rows(rows: Sequence[tuple], slice_shape: Callable[[str], tuple[int, int]],
                patch: int) -> list[tuple]:
    """Replace each pool slice row ``(id, path, frame, sha256, "pool")`` by its patches' rows
    (slice order, then row-major); other rows are kept."""
    out = []
    for row in rows:
        sid, path, frame, digest, split = row
        if split != "pool":
            out.append(row)
            continue
        h, w = slice_shape(sid)
        out += [(patch_id(sid, r, c), path, frame, digest, split)
                for r, c, _, _ in patch_boxes(h, w, patch)]
    return out


def network_boxes(boxes: np.ndarray, shapes: np.ndarray, size: int) -> np.ndarray:
    """``[n, 4]`` boxes ``(row, col, h, w)`` of original ``[n, 4]`` boxes in slices of
    ``[n, 2]`` shapes, mapped to the ``size × size`` network input (at least one pixel)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    shapes = np.asarray(shapes, dtype=np.float64)
    out = np.zeros(boxes.shape, dtype=np.int64)
    for axis, (start, extent) in enumerate(((0, 2), (1, 3))):
        scale = size / shapes[:, axis]
        lo = np.floor(boxes[:, start] * scale).astype(np.int64).clip(0, size - 1)
        hi = np.ceil((boxes[:, start] + boxes[:, extent]) * scale).astype(np.int64)
        hi = np.maximum(hi.clip(max=size), lo + 1)
        out[:, start], out[:, extent] = lo, hi - lo
    return out


class ProjectRegionTask(RegionSegmentationTask):
    """The task of a region project: a slice task whose pool is original-resolution patches.

    Training (:meth:`fit`, inherited from
    :class:`~medactive.tasks.segmentation.regions.RegionSegmentationTask`) runs on the slices with a
    labelled patch with the partial loss; :meth:`label_maps` builds their maps at the original
    size and resizes them (nearest neighbour) to the network size.

    Args:
        base: the :class:`~medactive.tasks.segmentation.task.SegmentationTask` over the pool *slices*.
        patch_ids: ``[n_pool]`` patch ids in pool order.
        pool_slices: ``[n_pool]`` index of each patch's slice in ``base.pool_ids``.
        boxes: ``[n_pool, 4]`` ``(row, col, h, w)`` in the original slice.
        slice_shapes: ``[n_slices, 2]`` original ``(H, W)`` of the base's slices.
        region_size: ``P`` (pixels of the original slice).
    """

    def __init__(self, base, patch_ids: Sequence[str], pool_slices: np.ndarray,
                 boxes: np.ndarray, slice_shapes: np.ndarray, region_size: int) -> None:
        # RegionSegmentationTask.__init__ tiles the resized slice; here the tiles are given
        self.base = base
        self.image_size = int(base.preset.image_size)
        self.region_size = check_patch_size(region_size)
        self.pool_ids = np.asarray(patch_ids, dtype=str)
        self.pool_slices = np.asarray(pool_slices, dtype=np.int64)
        self.boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
        self.slice_shapes = np.asarray(slice_shapes, dtype=np.int64).reshape(-1, 2)
        self.pool_groups = np.asarray(base.pool_groups)[self.pool_slices]
        self.last_fit = None
        self.last_model = None
        if not (len(self.pool_ids) == len(self.pool_slices) == len(self.boxes)):
            raise ValueError("patch ids, slices and boxes must have the same length")

    def pool_labels(self, idx: np.ndarray) -> list[np.ndarray]:
        raise ConfigError("a project has no ground truth; labels come from the store")

    def label_maps(self, labeled_idx: np.ndarray, labels: Sequence[Any]
                   ) -> tuple[np.ndarray, torch.Tensor]:
        """Assemble patch labels into network-size label maps of their slices.

        Args:
            labeled_idx: ``[n]`` patch indices.
            labels: ``n`` ``[h, w]`` patch masks (or ``[H, W]`` slice masks: only the patch is
                read).

        Returns:
            ``(slice_idx [m], maps [m, S, S] int64)``: the sorted slices with a labelled patch
            and their maps, ``IGNORE_INDEX`` outside labelled patches.

        Raises:
            DataError: a label of the wrong shape or with values outside the class set.
        """
        order, maps = slice_label_maps(
            labeled_idx, labels, self.boxes, self.pool_slices,
            lambda s: tuple(int(v) for v in self.slice_shapes[s]), len(self.base.classes),
            self.pool_ids)
        size = self.image_size
        resized = [resize_masks(torch.from_numpy(m)[None], size)[0] for m in maps]
        stacked = (torch.stack(resized) if resized
                   else torch.zeros(0, size, size, dtype=torch.long))
        return order, stacked

    def label_metrics(self, labeled_idx: np.ndarray) -> dict[str, float]:
        """``labelled_pixel_fraction`` (of the pool's original pixels) and
        ``n_labelled_slices``."""
        idx = np.unique(np.asarray(labeled_idx, dtype=np.int64))
        total = int(self.slice_shapes.prod(axis=1).sum())
        pixels = int((self.boxes[idx, 2] * self.boxes[idx, 3]).sum())
        return {"labelled_pixel_fraction": pixels / total if total else 0.0,
                "n_labelled_slices": float(np.unique(self.pool_slices[idx]).size)}

    def predictions(self, model, *, seed: int) -> OriginalPatchPredictions:
        """Streamed per-patch outputs of ``model`` (see :class:`OriginalPatchPredictions`)."""
        return OriginalPatchPredictions(self.base.predictions(model, seed=seed), self.boxes,
                                        self.pool_slices, self.slice_shapes)

    def describe(self) -> dict[str, Any]:
        info = self.base.describe()
        info["region"] = {
            "unit": "square patch of the slice at its original resolution",
            "size": self.region_size, "n_pool": len(self.pool_ids),
            "id": "<slice id>@<row>,<col> (pixel offsets in the original slice)",
            "training": "original-size partial label maps resized (nearest) to the network "
                        "size; Dice + CE on labelled pixels only",
            "scores": "pixel scores resized (bilinear) to the original size, reduced per patch",
        }
        return info


def _resize_scores(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``[..., S, S]`` pixel maps resized (bilinear) to ``[..., H, W]``."""
    if tuple(arr.shape[-2:]) == tuple(shape):
        return arr
    lead = arr.shape[:-2]
    t = torch.from_numpy(np.array(arr, dtype=np.float64).reshape(1, -1, *arr.shape[-2:]))
    out = F.interpolate(t, size=tuple(int(v) for v in shape), mode="bilinear",
                        align_corners=False)
    return out.numpy().reshape(*lead, *shape)


class OriginalPatchPredictions(RegionPredictions):
    """Per-patch outputs for patches defined at the slices' original resolution.

    Args:
        slices: the slice-level :class:`~medactive.tasks.segmentation.predictions.SegmentationPredictions`.
        boxes: ``[n_pool, 4]`` ``(row, col, h, w)`` in the original slice.
        pool_slices: ``[n_pool]`` slice of each patch.
        slice_shapes: ``[n_slices, 2]`` original ``(H, W)``.

    :meth:`score` resizes each slice's ``[S, S]`` pixel scores to ``[H, W]`` and reduces them
    over the patch; dense ``get`` crops, embeddings and BADGE gradients use the box mapped to
    the network size (:func:`network_boxes`). Memory: one batch of slices and one resized
    score map at a time, plus per-patch results.
    """

    def __init__(self, slices, boxes: np.ndarray, pool_slices: np.ndarray,
                 slice_shapes: np.ndarray) -> None:
        pool_slices = np.asarray(pool_slices, dtype=np.int64)
        self.boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
        self.slice_shapes = np.asarray(slice_shapes, dtype=np.int64).reshape(-1, 2)
        size = int(slices.images.shape[-1])
        tiles = network_boxes(self.boxes, self.slice_shapes[pool_slices], size)
        super().__init__(slices, tiles, pool_slices, np.arange(len(pool_slices)))

    def score(self, fn: Callable[[np.ndarray], np.ndarray], field: str, idx: np.ndarray,
              ) -> np.ndarray:
        """Patch scores ``[n]``: ``fn`` per pixel on ``field`` at the network size, resized to
        the original slice and reduced over each patch.

        Raises:
            ConfigError: ``fn`` gives one score per slice.
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
                foreground = 1.0 - background.astype(np.float64)
            for j in np.unique(local).tolist():
                members = rows[local == j]
                shape = tuple(int(v) for v in self.slice_shapes[self.pool_slices[
                    idx[members[0]]]])
                up = _resize_scores(pixel[j], shape)
                fg = None if foreground is None else _resize_scores(foreground[j], shape)
                for row in members.tolist():
                    r, c, h, w = self.boxes[idx[row]]
                    crop = up[None, ..., r:r + h, c:c + w]
                    weights = None if fg is None else fg[None, r:r + h, c:c + w]
                    out[row] = reduce_pixels(crop, self.reduction, weights)[0]
        return out

    def _slice_batches(self, idx: np.ndarray):
        """Yield ``(x [b, 1, S, S], rows, local)`` over the slices of patches ``idx``."""
        uniq, inverse, order, bounds = self._groups(idx)
        chunk = self.slices._chunk("probas")
        for start in range(0, uniq.size, chunk):
            batch = uniq[start:start + chunk]
            x = self.slices.images[torch.as_tensor(batch)].to(self.slices.device)
            rows = order[bounds[start]:bounds[start + len(batch)]]
            yield x, rows, inverse[rows] - start

    @torch.no_grad()
    def _get_embeddings(self, idx: np.ndarray) -> np.ndarray:
        net = self.slices.net
        d = net.channels[0]
        missing = np.unique([i for i in idx.tolist() if i not in self._embeddings])
        if missing.size:
            net.eval()
            for x, rows, local in self._slice_batches(missing):
                _, feats, _ = net.features(x)
                for row, loc in zip(rows.tolist(), local.tolist(), strict=True):
                    i = int(missing[row])
                    r, c, h, w = self.tiles[i]
                    self._embeddings[i] = feats[loc, :, r:r + h, c:c + w].mean(
                        dim=(1, 2)).cpu().numpy().astype(np.float64)
        if idx.size == 0:
            return np.zeros((0, d))
        return np.stack([self._embeddings[i] for i in idx.tolist()])

    def gradient_embeddings_array(self, idx: np.ndarray) -> np.ndarray:
        """BADGE gradients ``[n, c * d]`` of each patch's own Dice + CE loss (on its box at the
        network size) at its argmax pseudo-label w.r.t. the final 1×1 convolution's weights."""
        idx = np.asarray(idx, dtype=np.int64)
        net = self.slices.net
        c, d = net.n_classes, net.channels[0]
        out = np.zeros((idx.size, c * d), dtype=np.float64)
        net.eval()
        for x, rows, local in self._slice_batches(idx):
            with torch.no_grad():
                logits, feats, _ = net.features(x)
            # mapped boxes of neighbouring patches may share a pixel: one gradient per patch
            for row, loc in zip(rows.tolist(), local.tolist(), strict=True):
                r, q, h, w = self.tiles[idx[row]]
                z = logits[loc:loc + 1, :, r:r + h, q:q + w].detach().requires_grad_(True)
                with torch.enable_grad():
                    loss = dice_ce_per_sample(z, z.argmax(dim=1)).sum()
                    (grad,) = torch.autograd.grad(loss, z)
                emb = torch.einsum("chw,dhw->cd", grad[0], feats[loc, :, r:r + h, q:q + w])
                out[row] = emb.reshape(c * d).cpu().numpy()
        return out

