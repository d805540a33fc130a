"""Mask files of single slices or patches: NIfTI or PNG read as integer label arrays.

Used wherever a person hands over a mask (imported files, uploads, a project's stored
``masks/<hash>.png``); values are returned as stored, the caller checks them against its
classes and shapes.

Example:
    >>> read_slice_mask("masks/case0/1.png").shape  # doctest: +SKIP
    (12, 16)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medactive.errors import DataError

__all__ = ["read_mask", "read_slice_mask"]


def read_mask(path: str | Path) -> np.ndarray:
    """A mask file (NIfTI or PNG) as an integer array (2-D; a single-slice volume is squeezed).

    Raises:
        DataError: the file is missing or unreadable; the message names it.
    """
    path = Path(path)
    try:
        if path.name.lower().endswith((".nii", ".nii.gz")):
            import nibabel as nib

            arr = np.asarray(nib.load(str(path)).dataobj)
        else:
            from PIL import Image

            with Image.open(path) as img:
                arr = np.asarray(img)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: mask file not found") from exc
    except Exception as exc:  # nibabel and Pillow raise many types for a corrupt file
        raise DataError(f"{path}: not a readable mask ({exc})") from exc
    if arr.ndim == 3 and 1 in arr.shape:
        arr = arr.reshape([s for s in arr.shape if s != 1] or [1])
    return arr


def read_slice_mask(path: str | Path) -> np.ndarray:
    """A 2D mask file as ``[H, W]``: PNG rows are ``H``; NIfTI ``(x, y)`` is transposed.

    Raises:
        DataError: unreadable, or a NIfTI mask of more than one slice.
    """
    path = Path(path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        from medactive.data.segmentation.nifti import read_nifti

        arr, _ = read_nifti(path, mask=True)
        if arr.shape[0] != 1:
            raise DataError(f"{path}: a slice mask must have one slice, got {arr.shape[0]}")
        return arr[0]
    return read_mask(path)
