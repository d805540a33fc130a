"""Overlap and surface-distance metrics of 3D label maps (survey §6.1.2).

Per class ``k`` of a predicted and a ground-truth label map ``[S, H, W]``:

- **Dice** ``2|P∩G| / (|P| + |G|)``.
- **ASD**, average surface distance: the mean distance from each border voxel of ``P`` to the
  nearest border voxel of ``G`` — medpy's ``asd(result, reference)``, the definition of the
  SSL4MIS evaluation code behind the survey's ACDC numbers; ``symmetric=True`` gives the mean
  over the border voxels of both masks pooled (medpy ≥ 0.5 ``assd``, MONAI ``symmetric=True``).
- **HD95**: the 95th percentile of the border distances of both directions pooled (medpy's
  ``hd95``; MONAI instead takes the larger of the two directed percentiles).

Border voxels are the voxels of a mask that a binary erosion with the face-connected structure
removes (medpy and MONAI both do this); distances are Euclidean in mm when the voxel spacing is
known (in voxels otherwise), computed by a distance transform with that spacing.

Empty masks are never skipped (the survey's code skips them, which flatters a method):

- ``P`` and ``G`` both empty: Dice 1, ASD 0, HD95 0 (the class is correctly absent);
- exactly one empty: Dice 0 and ASD = HD95 = the **diagonal of the volume** in the distance
  unit, ``sqrt(sum((shape_i * spacing_i)^2))``, an upper bound of any distance inside it.

References:
    Heimann et al., "Comparison and Evaluation of Methods for Liver Segmentation From CT
    Datasets", IEEE TMI 28(8), 2009 (surface distances); medpy.metric.binary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1.0 when both are empty)."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    total = int(pred.sum()) + int(gt.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / total


def border(mask: np.ndarray) -> np.ndarray:
    """Border voxels of a boolean mask: those a face-connected erosion removes."""
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, iterations=1)


def surface_distances(pred: np.ndarray, gt: np.ndarray,
                      spacing: Sequence[float] | None = None) -> np.ndarray:
    """Distances ``[n_border(pred)]`` from each border voxel of ``pred`` to the border of ``gt``.

    Both masks must be non-empty. The arrays are cropped to the bounding box of ``pred ∪ gt``
    first, which leaves every distance unchanged (all border voxels lie inside it).
    """
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    spacing = _spacing(spacing, pred.ndim)
    box = _bbox(pred | gt)
    pred_border, gt_border = border(pred[box]), border(gt[box])
    dist = ndimage.distance_transform_edt(~gt_border, sampling=spacing)
    return dist[pred_border]


def diagonal(shape: Sequence[int], spacing: Sequence[float] | None = None) -> float:
    """Length of the volume's diagonal, ``sqrt(sum((shape_i * spacing_i)^2))``."""
    spacing = _spacing(spacing, len(shape))
    return float(np.sqrt(np.sum((np.asarray(shape, dtype=np.float64) * spacing) ** 2)))


def binary_metrics(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None,
                   *, distances: bool = True, symmetric: bool = False) -> dict[str, float]:
    """Dice, ASD and HD95 of two boolean masks of the same shape.

    Args:
        pred: ``[S, H, W]`` (or any shape) predicted mask.
        gt: ground-truth mask, same shape.
        spacing: voxel size per axis (mm); ``None`` = 1 (distances in voxels).
        distances: compute ASD and HD95 (else only Dice).
        symmetric: ASD over the pooled distances of both directions (medpy ``assd``) instead
            of prediction → ground truth only (medpy ``asd``).

    Returns:
        ``{"dice", "asd", "hd95"}`` (only ``"dice"`` when ``distances`` is False). Empty masks
        follow the rules of the module docstring.

    Example:
        >>> a = np.zeros((1, 4, 4), bool); a[0, :2] = True
        >>> b = np.zeros((1, 4, 4), bool); b[0, :3] = True
        >>> binary_metrics(a, b)["dice"]
        0.8
    """
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    out = {"dice": dice(pred, gt)}
    if not distances:
        return out
    # an axis of length 1 (a 2D image stored as a one-slice volume) has no surface along it:
    # erosion would treat the missing neighbours as background and strip the whole region
    keep = [i for i, n in enumerate(pred.shape) if n > 1]
    if len(keep) < pred.ndim and keep:
        spacing = None if spacing is None else _spacing(spacing, pred.ndim)[keep]
        pred, gt = pred.reshape([pred.shape[i] for i in keep]), gt.reshape(
            [gt.shape[i] for i in keep])
    has_pred, has_gt = bool(pred.any()), bool(gt.any())
    if not has_pred and not has_gt:
        out.update(asd=0.0, hd95=0.0)
    elif not has_pred or not has_gt:
        worst = diagonal(pred.shape, spacing)
        out.update(asd=worst, hd95=worst)
    else:
        d_pg = surface_distances(pred, gt, spacing)
        d_gp = surface_distances(gt, pred, spacing)
        both = np.concatenate([d_pg, d_gp])
        asd = float(both.mean()) if symmetric else float(d_pg.mean())
        out.update(asd=asd, hd95=float(np.percentile(both, 95)))
    return out


def multiclass_metrics(pred: np.ndarray, gt: np.ndarray, classes: Sequence[int],
                       spacing: Sequence[float] | None = None, *, distances: bool = True,
                       symmetric: bool = False) -> dict[int, dict[str, float]]:
    """:func:`binary_metrics` for each class index in ``classes`` of two label maps.

    Args:
        pred: ``[S, H, W]`` int predicted labels.
        gt: ``[S, H, W]`` int ground-truth labels.
        classes: the foreground class indices to score (e.g. ``(1, 2, 3)``).

    Returns:
        ``{class: {"dice", "asd", "hd95"}}``.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    return {int(k): binary_metrics(pred == k, gt == k, spacing, distances=distances,
                                   symmetric=symmetric) for k in classes}


def _spacing(spacing: Sequence[float] | None, ndim: int) -> np.ndarray:
    if spacing is None:
        return np.ones(ndim)
    spacing = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if spacing.size != ndim:
        raise ValueError(f"spacing has {spacing.size} values for a {ndim}-D mask")
    return spacing


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    coords = np.nonzero(mask)
    return tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)
