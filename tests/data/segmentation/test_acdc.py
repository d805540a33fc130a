from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from medactive.data.segmentation import load_segmentation_data, looks_like_segmentation_data
from medactive.data.segmentation.acdc import load_acdc_nifti, load_ssl4mis_h5
from medactive.errors import DataError


def test_h5_ed_frames_only(h5_root, seg):
    data = load_ssl4mis_h5(h5_root)  # frames="ed" by default
    assert data.layout == "ssl4mis-h5"
    assert len(data.train) == 4 * 3  # 4 patients x 3 slices of frame01
    assert all("_frame01_" in s.id for s in data.train)
    assert [v.id for v in data.val] == ["patient002_frame01"]
    assert [v.id for v in data.test] == ["patient001_frame01"]
    assert data.train[0].id == "patient003_frame01_slice_1"
    assert data.train[0].group == "patient003"
    image, mask = data.train[0].load()
    assert image.shape == mask.shape == (seg.H, seg.W) and image.dtype == np.float32
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1, 2, 3}
    image, mask = data.test[0].load()
    assert image.shape == (3, seg.H, seg.W)
    assert data.distance_unit == "voxel" and data.spacing_source is None
    assert any("voxels" in n for n in data.notes)


def test_h5_both_frames_and_natural_order(h5_root):
    data = load_segmentation_data(h5_root, frames="both")
    assert len(data.train) == 4 * 2 * 3 and len(data.val) == 2 and len(data.test) == 2
    es = load_segmentation_data(h5_root, frames="es")
    assert all("_frame02_" in s.id for s in es.train)


def test_h5_spacing_csv(h5_root, tmp_path):
    csv = tmp_path / "spacing.csv"
    csv.write_text("case,z,y,x\npatient001,10,1.5,1.5\npatient002_frame01,5,1.25,1.25\n")
    data = load_segmentation_data(h5_root, spacing_csv=csv)
    assert data.test[0].spacing == (10.0, 1.5, 1.5)
    assert data.val[0].spacing == (5.0, 1.25, 1.25)
    assert data.distance_unit == "mm"


def test_h5_spacing_csv_missing_volume(h5_root, tmp_path):
    csv = tmp_path / "spacing.csv"
    csv.write_text("case,z,y,x\npatient001,10,1.5,1.5\n")
    with pytest.raises(DataError, match=r"spacing.csv.*patient002_frame01"):
        load_segmentation_data(h5_root, spacing_csv=csv)


def test_h5_spacing_csv_bad_value(h5_root, tmp_path):
    csv = tmp_path / "spacing.csv"
    csv.write_text("case,z,y,x\npatient001,ten,1.5,1.5\n")
    with pytest.raises(DataError, match=r"spacing.csv, row 2"):
        load_segmentation_data(h5_root, spacing_csv=csv)


def test_h5_mask_shape_differs(h5_root, seg):
    import h5py

    bad = h5_root / "data" / "slices" / "patient003_frame01_slice_2.h5"
    with h5py.File(bad, "w") as f:
        f["image"] = np.zeros((seg.H, seg.W), np.float32)
        f["label"] = np.zeros((seg.H, seg.W - 1), np.uint8)
    data = load_ssl4mis_h5(h5_root)
    ref = next(s for s in data.train if s.id == "patient003_frame01_slice_2")
    with pytest.raises(DataError, match=r"patient003_frame01_slice_2\.h5: mask shape"):
        ref.load()


def test_h5_labels_outside_class_set(h5_root, seg):
    import h5py

    bad = h5_root / "data" / "patient001_frame01.h5"
    image, mask = seg.synthetic_volume(np.random.default_rng(1))
    mask[0, 0, 0] = 7
    with h5py.File(bad, "w") as f:
        f["image"], f["label"] = image, mask
    data = load_ssl4mis_h5(h5_root)
    with pytest.raises(DataError, match=r"patient001_frame01\.h5: label values \[7\] are "
                                        r"outside the class set 0..3"):
        data.test[0].load()


def test_h5_unreadable_file(h5_root):
    bad = h5_root / "data" / "slices" / "patient004_frame01_slice_1.h5"
    bad.write_bytes(b"this is not an h5 file")
    data = load_ssl4mis_h5(h5_root)
    ref = next(s for s in data.train if s.id == "patient004_frame01_slice_1")
    with pytest.raises(DataError, match=r"patient004_frame01_slice_1\.h5: cannot read"):
        ref.load()


def test_h5_missing_dataset_and_listed_file(h5_root, seg):
    import h5py

    with h5py.File(h5_root / "data" / "patient002_frame01.h5", "w") as f:
        f["image"] = np.zeros((3, seg.H, seg.W), np.float32)
    with pytest.raises(DataError, match=r"patient002_frame01\.h5: no 'label' dataset"):
        load_ssl4mis_h5(h5_root).val[0].load()
    (h5_root / "data" / "slices" / "patient005_frame01_slice_3.h5").unlink()
    with pytest.raises(DataError, match=r"patient005_frame01_slice_3\.h5: listed in "
                                        r"train_slices.list but missing"):
        load_ssl4mis_h5(h5_root)


def test_acdc_nifti_reads_ed_from_info_cfg(acdc_nifti_root, seg):
    data = load_acdc_nifti(acdc_nifti_root)
    assert data.layout == "acdc-nifti"
    # 4 patients, not the standard split: fixed 70/10/20 split by patient -> 2/1/1
    assert len(data.val) == 1 and len(data.test) == 1
    assert len(data.train) == 2 * 3
    assert all(s.id.split("/")[1] == "frame01" for s in data.train)
    assert data.train[0].id.count("/") == 2 and data.train[0].id.endswith("/0")
    assert data.distance_unit == "mm"
    assert data.test[0].spacing == pytest.approx((10.0, 1.5, 1.25))
    image, mask = data.test[0].load()
    assert image.shape == mask.shape == (3, seg.H, seg.W)
    assert image.min() == 0.0 and image.max() == 1.0  # min-max normalised per volume
    # slices come out in the same orientation they were written in
    _, mask0 = data.train[0].load()
    assert mask0.shape == (seg.H, seg.W)
    es = load_acdc_nifti(acdc_nifti_root, frames="es")
    assert all("/frame05/" in s.id for s in es.train)
    both = load_acdc_nifti(acdc_nifti_root, frames="both")
    assert len(both.train) == 2 * len(data.train)


def test_acdc_nifti_standard_split(tmp_path):
    from medactive.data.segmentation.acdc import SSL4MIS_TEST, SSL4MIS_VAL, _split_patients

    patients = [f"patient{i:03d}" for i in range(1, 151)]
    train, val, test, note = _split_patients(tmp_path, patients)
    assert len(train) == 70 and len(val) == 10 and len(test) == 20
    assert val == {f"patient{i:03d}" for i in SSL4MIS_VAL}
    assert test == {f"patient{i:03d}" for i in SSL4MIS_TEST}
    assert "above 100" in note


def test_acdc_nifti_list_files(acdc_nifti_root):
    (acdc_nifti_root / "val.list").write_text("patient002\n")
    (acdc_nifti_root / "test.list").write_text("patient001_frame01\n")
    data = load_acdc_nifti(acdc_nifti_root)
    assert [v.group for v in data.val] == ["patient002"]
    assert [v.group for v in data.test] == ["patient001"]
    assert {s.group for s in data.train} == {"patient003", "patient004"}


def test_acdc_nifti_mask_shape_differs(acdc_nifti_root, seg):
    gt = acdc_nifti_root / "training" / "patient003" / "patient003_frame01_gt.nii.gz"
    seg.write_nifti(gt, np.zeros((3, seg.H, seg.W + 2), np.uint8), dtype=np.uint8)
    data = load_acdc_nifti(acdc_nifti_root)
    refs = [v for v in (*data.val, *data.test) if v.group == "patient003"]
    refs += [s for s in data.train if s.group == "patient003"]
    with pytest.raises(DataError, match=r"patient003_frame01_gt\.nii\.gz: mask shape "
                                        r"\(3, 40, 38\) differs from image shape \(3, 40, 36\)"):
        refs[0].load()


def test_acdc_nifti_labels_outside_class_set(acdc_nifti_root, seg):
    gt = acdc_nifti_root / "training" / "patient002" / "patient002_frame01_gt.nii.gz"
    mask = np.zeros((3, seg.H, seg.W), np.uint8)
    mask[1, 5, 5] = 4
    seg.write_nifti(gt, mask, dtype=np.uint8)
    data = load_acdc_nifti(acdc_nifti_root)
    ref = next(r for r in (*data.train, *data.val, *data.test) if r.group == "patient002")
    with pytest.raises(DataError, match=r"patient002_frame01_gt\.nii\.gz: label values \[4\]"):
        ref.load()


def test_acdc_nifti_unreadable_file(acdc_nifti_root):
    bad = acdc_nifti_root / "training" / "patient004" / "patient004_frame01.nii.gz"
    bad.write_bytes(gzip.compress(b"garbage" * 10))
    with pytest.raises(DataError, match=r"patient004_frame01\.nii\.gz: cannot read"):
        data = load_acdc_nifti(acdc_nifti_root)
        for ref in (*data.train, *data.val, *data.test):
            ref.load()


def test_acdc_nifti_missing_info_cfg(tmp_path, seg):
    root = seg.write_acdc_nifti(tmp_path / "raw", info=False)
    with pytest.raises(DataError, match=r"Info\.cfg: missing"):
        load_acdc_nifti(root)
    assert len(load_acdc_nifti(root, frames="both").train) > 0


def test_looks_like_segmentation_data(h5_root, acdc_nifti_root, tmp_path):
    assert looks_like_segmentation_data(h5_root)
    assert looks_like_segmentation_data(acdc_nifti_root)
    assert not looks_like_segmentation_data(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    assert not looks_like_segmentation_data(tmp_path / "empty")
    (tmp_path / "file.npz").write_bytes(b"")
    assert not looks_like_segmentation_data(tmp_path / "file.npz")


def test_unknown_layout_and_bad_frames(tmp_path, seg):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no segmentation data found"):
        load_segmentation_data(tmp_path / "empty")
    root = seg.write_h5_layout(tmp_path / "h5")
    with pytest.raises(DataError, match="frames='mid'"):
        load_segmentation_data(root, frames="mid")


def test_real_acdc_h5_survey_protocol(acdc_h5_real: Path):
    data = load_segmentation_data(acdc_h5_real)
    assert len(data.train) == 656
    assert len({s.group for s in data.train}) == 70
    assert len(data.val) == 10 and len(data.test) == 20
    assert all("_frame01" in r.id for r in (*data.train, *data.val, *data.test))
    both = load_segmentation_data(acdc_h5_real, frames="both")
    assert len(both.train) == 1312 and len(both.val) == 20 and len(both.test) == 40
    image, mask = data.test[0].load()
    assert image.ndim == 3 and image.shape == mask.shape
