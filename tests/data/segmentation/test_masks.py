"""Mask files of one slice or patch (NIfTI or PNG) read as integer arrays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medactive.data.segmentation.masks import read_mask, read_slice_mask
from medactive.errors import DataError


def test_png_mask_rows_are_h(tmp_path):
    mask = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)  # 2 rows x 3 columns
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert np.array_equal(read_slice_mask(tmp_path / "m.png"), mask)
    assert np.array_equal(read_mask(tmp_path / "m.png"), mask)


def test_nifti_slice_mask_is_transposed_and_one_slice_only(tmp_path):
    nib = pytest.importorskip("nibabel")
    mask = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)  # [H=2, W=3]
    nib.save(nib.Nifti1Image(mask.T[:, :, None], np.eye(4)), str(tmp_path / "m.nii.gz"))
    assert np.array_equal(read_slice_mask(tmp_path / "m.nii.gz"), mask)
    nib.save(nib.Nifti1Image(np.zeros((3, 2, 2), np.uint8), np.eye(4)),
             str(tmp_path / "two.nii.gz"))
    with pytest.raises(DataError, match="two.nii.gz: a slice mask must have one slice, got 2"):
        read_slice_mask(tmp_path / "two.nii.gz")


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.png: mask file not found"):
        read_slice_mask(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="bad.png: not a readable mask"):
        read_mask(tmp_path / "bad.png")
