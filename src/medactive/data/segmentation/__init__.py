"""Segmentation data: a pool of 2D slices plus whole validation / test volumes.

- :mod:`.base` — the data types (:class:`~.base.SegmentationData`, slice and volume
  references), pair checks, list / spacing / class files, patient-level splits;
- :mod:`.acdc` — ACDC, as the SSL4MIS h5 layout or the raw NIfTI release;
- :mod:`.nifti` — generic NIfTI image/mask folders (a DICOM series counts as a volume);
- :mod:`.dicom` — DICOM series read with pydicom;
- :mod:`.png` — 2D image/mask pairs (PNG, JPEG, TIFF).

:func:`load_segmentation_data` detects the layout from the files.
"""

from __future__ import annotations

from pathlib import Path

from medactive.data.segmentation import acdc, nifti, png
from medactive.data.segmentation.base import SegmentationData, check_frames
from medactive.errors import DataError

__all__ = ["SegmentationData", "load_segmentation_data", "looks_like_segmentation_data"]


def load_segmentation_data(path: str | Path, *, frames: str = "ed",
                           spacing_csv: str | Path | None = None) -> SegmentationData:
    """Read a segmentation dataset in any supported layout (detected from the files).

    Args:
        path: the dataset folder.
        frames: ``"ed"`` (end-diastole only, the survey's ACDC protocol), ``"es"`` or
            ``"both"``; ignored by a generic NIfTI folder (no cardiac frames).
        spacing_csv: voxel spacings for the h5 layout (see :func:`read_spacing_csv`); NIfTI
            spacing comes from the file headers; 2D images have none (distances in pixels).

    Raises:
        DataError: unknown layout or unreadable list/CSV (per-file errors surface when a file
            is read).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; segmentation data is a folder (SSL4MIS h5 "
                        "layout, raw ACDC NIfTI, NIfTI image/mask pairs or 2D image/mask "
                        "pairs)")
    frames = check_frames(frames)
    if acdc.is_ssl4mis_h5(path):
        return acdc.load_ssl4mis_h5(path, frames=frames, spacing_csv=spacing_csv)
    if spacing_csv is not None:
        raise DataError(f"spacing_csv={str(spacing_csv)!r} is only for the h5 layout; {path} "
                        "is not one (NIfTI headers give the spacing; 2D images have none)")
    if acdc.is_acdc_nifti(path):
        return acdc.load_acdc_nifti(path, frames=frames)
    if nifti.is_nifti_folder(path):
        return nifti.load_nifti_folder(path)
    if png.pair_dirs(path)[0] is not None:
        # an images/ folder without NIfTI pairs: 2D pairs, or an error naming what is missing
        return png.load_image_folder(path)
    raise DataError(f"{path}: no segmentation data found; expected the SSL4MIS h5 layout "
                    "(data/slices/*.h5 + *.list), raw ACDC (patientNNN/patientNNN_frameFF.nii.gz "
                    "with _gt masks), NIfTI image/mask pairs (images/ + masks/ or labels/, or "
                    "NAME.nii.gz beside NAME_mask.nii.gz; an images/NAME/ folder of DICOM "
                    "slices is a volume too) or 2D image/mask pairs (images/NAME.png, .jpg or "
                    ".tif + masks/NAME.png or .tif)")


def looks_like_segmentation_data(path: str | Path) -> bool:
    """Whether ``path`` is a folder in one of the segmentation layouts (cheap: lists files)."""
    path = Path(path)
    if not path.is_dir():
        return False
    try:
        return (acdc.is_ssl4mis_h5(path) or acdc.is_acdc_nifti(path)
                or nifti.is_nifti_folder(path) or png.is_image_folder(path))
    except OSError:
        return False
