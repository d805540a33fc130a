from __future__ import annotations

import numpy as np
import pytest

from medactive.data.segmentation import load_segmentation_data, looks_like_segmentation_data
from medactive.data.segmentation.nifti import load_nifti_folder, read_nifti
from medactive.errors import DataError


def _write_folder(seg, root, n=5, arrangement="subfolders", seed=0):
    rng = np.random.default_rng(seed)
    if arrangement == "subfolders":
        (root / "images").mkdir(parents=True)
        (root / "labels").mkdir()
    else:
        root.mkdir(parents=True)
    for i in range(n):
        image, mask = seg.synthetic_volume(rng, 2)
        if arrangement == "subfolders":
            seg.write_nifti(root / "images" / f"case{i}_0000.nii.gz", image)
            seg.write_nifti(root / "labels" / f"case{i}.nii.gz", mask, dtype=np.uint8)
        else:
            seg.write_nifti(root / f"case{i}.nii.gz", image)
            seg.write_nifti(root / f"case{i}_mask.nii.gz", mask.astype(np.float32))
    return root


def test_read_nifti_orientation_and_spacing(tmp_path, seg):
    vol = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    seg.write_nifti(tmp_path / "v.nii.gz", vol, spacing_zyx=(8.0, 2.0, 0.5))
    image, spacing = read_nifti(tmp_path / "v.nii.gz", mask=True)
    np.testing.assert_array_equal(image, vol)
    assert spacing == (8.0, 2.0, 0.5)
    normed, _ = read_nifti(tmp_path / "v.nii.gz")
    assert normed.min() == 0 and normed.max() == 1


@pytest.mark.parametrize("arrangement", ["subfolders", "flat"])
def test_nifti_folder(tmp_path, arrangement, seg):
    root = _write_folder(seg, tmp_path / "seg", arrangement=arrangement)
    assert looks_like_segmentation_data(root)
    data = load_segmentation_data(root)
    assert data.layout == "nifti-folder"
    assert data.classes == ("background", "class_1", "class_2", "class_3")
    assert len(data.val) == 1 and len(data.test) == 1 and len(data.train) == 3 * 2
    assert data.train[0].id.endswith("/0")
    image, mask = data.train[1].load()
    assert image.shape == mask.shape == (seg.H, seg.W)
    assert data.test[0].spacing == pytest.approx((10.0, 1.5, 1.25))


def test_nifti_folder_classes_txt_and_lists(tmp_path, seg):
    root = _write_folder(seg, tmp_path / "seg")
    (root / "classes.txt").write_text("background\nRV\nMYO\nLV\n")
    (root / "val.list").write_text("case1\n")
    (root / "test.list").write_text("case0\n")
    data = load_nifti_folder(root)
    assert data.classes == ("background", "RV", "MYO", "LV")
    assert [v.id for v in data.val] == ["case1"] and [v.id for v in data.test] == ["case0"]
    (root / "classes.txt").write_text("background\nheart\n")
    data = load_nifti_folder(root)
    with pytest.raises(DataError, match=r"case0\.nii\.gz: label values \[2, 3\] are outside"):
        data.test[0].load()


def test_nifti_folder_errors(tmp_path, seg):
    root = _write_folder(seg, tmp_path / "seg")
    (root / "labels" / "case2.nii.gz").unlink()
    with pytest.raises(DataError, match=r"case2_0000\.nii\.gz: no mask named case2"):
        load_nifti_folder(root)
    root = _write_folder(seg, tmp_path / "seg2", arrangement="flat")
    seg.write_nifti(root / "case3_mask.nii.gz",
                    np.full((2, seg.H, seg.W), 0.5, np.float32))
    with pytest.raises(DataError, match=r"case3_mask\.nii\.gz: mask holds non-integer"):
        data = load_nifti_folder(root)
        for ref in (*data.train, *data.val, *data.test):
            ref.load()
