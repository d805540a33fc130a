"""Masks per volume: NIfTI with the source geometry, DICOM SEG over a DICOM series (highdicom),
and both read back by ``project import``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.cli import main
from medactive.data.segmentation.masks import read_slice_mask
from medactive.project.importer import BadRows, import_labels
from medactive.project.volume_masks import (
    MANIFEST,
    export_masks,
    import_volume_masks,
)
from medactive.project.workflow import init_project, query

from .conftest import SEG_H, SEG_S, SEG_W, save_nifti, seg_volume


def _write_slice_masks(folder: Path, masks: dict[str, np.ndarray]) -> Path:
    for sid, mask in masks.items():
        path = folder / f"{sid}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask.astype(np.uint8)).save(path)
    return folder


def _masks(store) -> dict[str, np.ndarray]:
    return {sid: read_slice_mask(store.directory / lab.mask_path)
            for sid, lab in store.current_labels("pool").items()}


# -- NIfTI -------------------------------------------------------------------------------------
def test_nifti_export_keeps_the_affine_and_imports_back(tmp_path, seg_folder):
    import nibabel as nib

    store = init_project(tmp_path / "a", seg_folder, task="segmentation", preset="smoke")
    mask1 = seg_volume(1)[1]
    edited = mask1[2].copy()
    edited[0, 0] = 2  # a label that differs from the volume's own mask
    import_labels(store, _write_slice_masks(tmp_path / "in", {"case1/0": mask1[0],
                                                              "case1/2": edited}))
    out = tmp_path / "masks"
    done = export_masks(store, out)
    assert (done.n_volumes, done.n_slices) == (2, SEG_S + 2)  # case0 from init, case1 two
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["volumes"]["case1"] == {"file": "case1.nii.gz", "slices": [0, 2]}
    assert manifest["classes"] == ["background", "outer", "inner"]
    src = nib.load(str(seg_folder / "images" / "case1.nii.gz"))
    got = nib.load(str(out / "case1.nii.gz"))
    np.testing.assert_array_equal(got.affine, src.affine)  # diag(1.2, 1.0, 3.0)
    np.testing.assert_allclose(got.affine, np.diag([1.2, 1.0, 3.0, 1]), atol=1e-6)
    assert got.header.get_zooms() == src.header.get_zooms()
    assert got.shape == (SEG_W, SEG_H, SEG_S) and got.get_data_dtype() == np.uint8
    data = np.asarray(got.dataobj)
    np.testing.assert_array_equal(data[:, :, 0], mask1[0].T)  # (x, y, z) = (column, row, slice)
    np.testing.assert_array_equal(data[:, :, 2], edited.T)
    assert not data[:, :, 1].any()  # unlabelled slice: 0 (the manifest says it is no label)

    # a fresh project over the same images takes the masks back, slice 1 stays unlabelled
    fresh = init_project(tmp_path / "b", seg_folder, task="segmentation", preset="smoke")
    report = import_volume_masks(fresh, out, annotator="bob")
    assert report.n_written == 2 and report.n_unchanged == SEG_S  # case0's init masks equal
    back = _masks(fresh)
    assert "case1/1" not in back
    np.testing.assert_array_equal(back["case1/0"], mask1[0])
    np.testing.assert_array_equal(back["case1/2"], edited)
    assert main(["project", "export", str(fresh.directory), "--format", "masks", "--out",
                 str(tmp_path / "again")]) == 0


def test_nifti_mask_of_another_geometry_is_refused(tmp_path, seg_folder, capsys):
    store = init_project(tmp_path / "a", seg_folder, task="segmentation", preset="smoke")
    folder = tmp_path / "volmasks"
    mask = seg_volume(1)[1]
    import nibabel as nib

    folder.mkdir()
    nib.save(nib.Nifti1Image(np.transpose(mask, (2, 1, 0)), np.diag([1.0, 1.0, 1.0, 1])),
             str(folder / "case1.nii.gz"))  # no manifest: a volume mask labels every slice
    save_nifti(mask[:, :-1], folder / "case2.nii.gz")  # one row short
    before = store.execute("SELECT COUNT(*) FROM labels")[0][0]
    with pytest.raises(BadRows) as info:
        import_volume_masks(store, folder)
    lines = str(info.value).splitlines()
    assert lines[1] == ("  file 1: case1.nii.gz: the mask's affine differs from the source "
                        "volume's (a mask of another scan, or resampled?)")
    assert lines[2].startswith("  file 2: case2.nii.gz: mask shape (3, 11, 16) [S, H, W]")
    assert store.execute("SELECT COUNT(*) FROM labels")[0][0] == before
    (folder / "case1.nii.gz").unlink()
    (folder / "case2.nii.gz").unlink()
    save_nifti(mask, folder / "case2.nii.gz")
    assert main(["project", "import", str(store.directory), str(folder)]) == 0  # the CLI finds it
    assert store.current_labels("pool")["case2/0"].annotator == "import:volmasks"  # every slice of the volume
    np.testing.assert_array_equal(_masks(store)["case2/1"], mask[1])
    assert main(["project", "export", str(tmp_path / "a"), "--format", "masks", "--out",
                 str(folder)]) != 0  # not empty
    assert "not empty" in capsys.readouterr().err


# -- DICOM SEG ---------------------------------------------------------------------------------
def _write_dicom_series(folder: Path, image: np.ndarray) -> dict[str, str]:
    """``[S, H, W]`` as an axial CT series (one file per slice, written in reverse order)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    uids = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid()}
    for k in range(image.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^P", "P1", "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
        ds.FrameOfReferenceUID = uids["frame"]
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
        ds.StudyDate, ds.StudyTime = "20261203", "120000"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.Manufacturer = "test"
        ds.ImagePositionPatient = [0.0, 0.0, 2.5 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [0.8, 0.6], 2.5
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = image.shape[1:]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, 0.0
        ds.PixelData = np.ascontiguousarray(np.clip(image[k], 0, None), dtype="<u2").tobytes()
        ds.save_as(folder / f"IM{image.shape[0] - k:03d}.dcm", enforce_file_format=True)
    return uids


@pytest.fixture
def dicom_folder(tmp_path) -> tuple[Path, dict[str, str]]:
    """A DICOM series 'ser' in the pool, NIfTI val/test volumes with masks."""
    root = tmp_path / "dcmvols"
    image, _ = seg_volume(7)
    uids = _write_dicom_series(root / "images" / "ser", image)
    for i in (3, 4):
        image, mask = seg_volume(i)
        save_nifti(image, root / "images" / f"case{i}.nii.gz")
        save_nifti(mask, root / "masks" / f"case{i}.nii.gz")
    (root / "val.list").write_text("case3\n")
    (root / "test.list").write_text("case4\n")
    (root / "classes.txt").write_text("background\nouter\ninner\n")
    return root, uids


def test_dicom_seg_has_the_series_geometry_and_imports_back(tmp_path, dicom_folder):
    highdicom = pytest.importorskip("highdicom")
    import pydicom

    root, uids = dicom_folder
    store = init_project(tmp_path / "a", root, task="segmentation", preset="smoke")
    mask = seg_volume(7)[1]
    labelled = {"ser/0": mask[0], "ser/2": np.zeros((SEG_H, SEG_W), np.uint8)}  # 2: background
    import_labels(store, _write_slice_masks(tmp_path / "in", labelled))
    out = tmp_path / "masks"
    export_masks(store, out)
    assert json.loads((out / MANIFEST).read_text())["volumes"]["ser"] == {
        "file": "ser.seg.dcm", "slices": [0, 2]}

    seg = highdicom.seg.segread(out / "ser.seg.dcm")
    assert seg.Modality == "SEG" and seg.FrameOfReferenceUID == uids["frame"]
    assert seg.StudyInstanceUID == uids["study"]
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["outer", "inner"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uids["series"]
    series = sorted((pydicom.dcmread(p) for p in (root / "images" / "ser").iterdir()),
                    key=lambda ds: float(ds.ImagePositionPatient[2]))
    first, third = str(series[0].SOPInstanceUID), str(series[2].SOPInstanceUID)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[first, third], segment_numbers=[1, 2])
    assert pixels.shape == (2, SEG_H, SEG_W, 2)
    np.testing.assert_array_equal(pixels[0, :, :, 0], mask[0] == 1)  # segment 1 = outer
    np.testing.assert_array_equal(pixels[0, :, :, 1], mask[0] == 2)
    assert not pixels[1].any()  # slice 2 labelled all background: frames present, empty
    assert int(seg.NumberOfFrames) == 4  # 2 slices x 2 segments, empty frames included

    fresh = init_project(tmp_path / "b", root, task="segmentation", preset="smoke")
    assert import_volume_masks(fresh, out).n_written == 2
    back = _masks(fresh)
    assert sorted(back) == ["ser/0", "ser/2"]
    np.testing.assert_array_equal(back["ser/0"], mask[0])
    assert not back["ser/2"].any()

    # a SEG of another frame of reference is refused, nothing stored
    seg_ds = pydicom.dcmread(out / "ser.seg.dcm")
    seg_ds.FrameOfReferenceUID = "1.2.3.4"
    other = tmp_path / "other"
    other.mkdir()
    seg_ds.save_as(other / "ser.seg.dcm")
    third_project = init_project(tmp_path / "c", root, task="segmentation", preset="smoke")
    with pytest.raises(BadRows, match=r"file 1: ser.seg.dcm: FrameOfReferenceUID 1.2.3.4 is "
                                      r"not the series'"):
        import_volume_masks(third_project, other)
    assert third_project.current_labels("pool") == {}


def test_masks_export_refuses_classification(project, tmp_path):
    query(project, strategy="random", budget=4)
    with pytest.raises(Exception, match="for segmentation projects"):
        export_masks(project, tmp_path / "m")
