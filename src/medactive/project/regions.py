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
  patch is kept (:func:`~medactive.tasks.segmentation.regions.crop_patch_mask`). Masks present
  at ``init`` (and whole-slice masks imported by slice id) label every patch of their slices:
  those slices count as fully labelled.
- **Training and scores.** The task is the simulated runs'
  :class:`~medactive.tasks.segmentation.regions.RegionSegmentationTask` over the project's
  slices, with the patches as an ``"original"``-frame
  :class:`~medactive.tasks.segmentation.regions.RegionPool` (:func:`original_pool`): label maps
  are assembled at the original size and resized (nearest) to the network size, pixel scores
  are resized (bilinear) to the original size and reduced over the original patches.

Example:
    >>> patch_boxes(12, 16, 8)
    [(0, 0, 8, 8), (0, 8, 8, 8), (8, 0, 4, 8), (8, 8, 4, 8)]
    >>> patch_id("case0/1", 8, 0), split_patch_id("case0/1@8,0")
    ('case0/1@8,0', ('case0/1', 8, 0))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medactive.errors import ConfigError, DataError
from medactive.tasks.segmentation.regions import (
    Box,
    RegionPool,
    patch_id,
    split_patch_id,
    tile_grid,
)

__all__ = ["check_patch_size", "expand_rows", "original_pool", "patch_box", "patch_boxes",
           "patch_id", "split_patch_id"]


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


def original_pool(patch_ids: Sequence[str], pool_slices: Sequence[int],
                  slice_shapes: Sequence[tuple[int, int]], patch: int, network_size: int
                  ) -> RegionPool:
    """The original-frame region pool of a project's patches.

    Args:
        patch_ids: ``[n]`` patch sample ids in pool order.
        pool_slices: ``[n]`` index of each patch's slice in the task's slices.
        slice_shapes: ``[n_slices]`` original ``(H, W)`` of those slices.
        patch: the project's ``region_size``.
        network_size: the preset's ``image_size``.

    Raises:
        DataError: an id that is not a patch of its slice's grid.
    """
    patch = check_patch_size(patch)
    shapes = np.asarray(slice_shapes, dtype=np.int64).reshape(-1, 2)
    slices = np.asarray(pool_slices, dtype=np.int64)
    boxes = [patch_box(pid, shapes[s], patch) for pid, s in zip(patch_ids, slices, strict=True)]
    return RegionPool(ids=np.asarray(patch_ids, dtype=str), slices=slices,
                      boxes=np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
                      slice_shapes=shapes, frame="original", network_size=network_size,
                      region_size=patch)
