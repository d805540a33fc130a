"""DICOM series folders as volumes: reading, errors, NIfTI-folder and project integration."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medactive.data.segmentation import dicom as data_dicom
from medactive.data.segmentation.dicom import (
    dicom_header,
    dicom_shape,
    read_dicom_raw,
    read_dicom_series,
)
from medactive.data.segmentation.nifti import load_nifti_folder, normalise
from medactive.errors import DataError
from tests.segmentation_data import run_smoke_segmentation

S, H, W = 5, 12, 16
SLOPE, INTERCEPT = 2.0, -1000.0
GAP, ROW_SPACING, COL_SPACING = 2.5, 0.8, 0.6
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # normal (0, 0, 1)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # normal row x col = (-1, 0, 0)
FILE_ORDER = (3, 0, 4, 1, 2)  # slice k (in position order) is written as file IM<FILE_ORDER[k]>
INSTANCE = (2, 5, 1, 4, 3)  # InstanceNumber of slice k: disagrees with the positions


def stored_values(shape=(S, H, W)) -> np.ndarray:
    """Stored (pre-rescale) values, distinct for every slice, row and column."""
    s, h, w = shape
    return (np.arange(s)[:, None, None] * 1000 + np.arange(h)[None, :, None] * 20
            + np.arange(w)[None, None, :]).astype(np.uint16)


def expected_raw(shape=(S, H, W)) -> np.ndarray:
    return (stored_values(shape).astype(np.float64) * SLOPE + INTERCEPT).astype(np.float32)


def _dataset(pixels: np.ndarray | None, *, series: str, position, orientation, instance,
             rows=None, cols=None) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.SeriesInstanceUID = series
    ds.InstanceNumber = instance
    if position is not None:
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = list(orientation)
    ds.PixelSpacing = [ROW_SPACING, COL_SPACING]
    ds.SliceThickness = 3.0
    ds.RescaleSlope = SLOPE
    ds.RescaleIntercept = INTERCEPT
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows if rows is not None else (pixels.shape[0] if pixels is not None else H)
    ds.Columns = cols if cols is not None else (pixels.shape[1] if pixels is not None else W)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if pixels is not None:
        ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds


def write_series(folder: Path, *, orientation=AXIAL, positions=True, series: str | None = None,
                 shape=(S, H, W), extras: bool = True) -> Path:
    """Write a series of ``shape`` whose slice ``k`` in position order holds
    ``stored_values()[k]``, in shuffled file names and InstanceNumbers; with ``extras``, add a
    hidden file, a DICOMDIR and a text file that must be skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    series = series or generate_uid()
    normal = np.cross(orientation[:3], orientation[3:])
    values = stored_values(shape)
    origin = np.array([-20.0, 10.0, 5.0])
    for k in range(shape[0]):
        position = origin + (k * GAP) * normal if positions else None
        ds = _dataset(values[k], series=series, position=position, orientation=orientation,
                      instance=INSTANCE[k % len(INSTANCE)] + 10 * (k // len(INSTANCE)))
        name = f"IM{FILE_ORDER[k]}" if k < len(FILE_ORDER) else f"IM{k}"
        ds.save_as(folder / (name + (".dcm" if k % 2 else "")), enforce_file_format=True)
    if extras:
        (folder / ".DS_Store").write_bytes(b"\0junk")
        (folder / "DICOMDIR").write_bytes(b"not a series slice")
        (folder / "notes.txt").write_text("ignored")
    return folder


def file_of(folder: Path, k: int) -> Path:
    """The file holding slice ``k`` (position order)."""
    name = f"IM{FILE_ORDER[k]}"
    return folder / (name + (".dcm" if k % 2 else ""))


# --- reading ---------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", [AXIAL, SAGITTAL], ids=["axial", "sagittal"])
def test_read_series_order_rescale_spacing(tmp_path, orientation):
    folder = write_series(tmp_path / "ser", orientation=orientation)
    raw, spacing = read_dicom_raw(folder)
    assert raw.shape == (S, H, W) and raw.dtype == np.float32
    np.testing.assert_array_equal(raw, expected_raw())  # position order, rescaled
    assert raw[0, 0, 0] == -1000.0 and raw[1, 2, 3] == (1000 + 40 + 3) * 2 - 1000
    assert spacing == pytest.approx((GAP, ROW_SPACING, COL_SPACING))
    image, spacing2 = read_dicom_series(folder)
    np.testing.assert_allclose(image, normalise(expected_raw()), atol=1e-6)
    assert image.min() == 0 and image.max() == 1 and spacing2 == spacing
    values, _ = read_dicom_series(folder, mask=True)
    np.testing.assert_array_equal(values, expected_raw())


def test_shape_reads_headers_only(tmp_path, monkeypatch):
    folder = write_series(tmp_path / "ser")
    calls = []
    real = pydicom.dcmread

    def spy(*args, **kwargs):
        calls.append(kwargs.get("stop_before_pixels"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", spy)
    assert dicom_shape(folder) == (S, H, W)
    shape, spacing = dicom_header(folder)
    assert shape == (S, H, W) and spacing == pytest.approx((GAP, ROW_SPACING, COL_SPACING))
    assert calls and all(calls)  # every read stopped before the pixel data
    assert data_dicom.dicom_files(folder) == sorted(
        (file_of(folder, k) for k in range(S)), key=lambda p: p.name)


def test_instance_number_fallback(tmp_path):
    folder = write_series(tmp_path / "ser", positions=False)
    raw, spacing = read_dicom_raw(folder)
    order = np.argsort(INSTANCE)  # slices sorted by InstanceNumber
    np.testing.assert_array_equal(raw, expected_raw()[order])
    assert spacing == pytest.approx((3.0, ROW_SPACING, COL_SPACING))  # SliceThickness


def test_single_slice_and_numeric_suffix(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    ds = _dataset(stored_values((1, H, W))[0], series="1.2.3", position=(0, 0, 0),
                  orientation=AXIAL, instance=1)
    ds.save_as(folder / "1.2.840.99.1", enforce_file_format=True)  # UID-style name
    raw, spacing = read_dicom_raw(folder)
    np.testing.assert_array_equal(raw, expected_raw((1, H, W)))
    assert spacing == pytest.approx((3.0, ROW_SPACING, COL_SPACING))


def _break(folder: Path, case: str) -> Path:
    """Spoil a valid series in one way; returns the file the error must name."""
    if case == "not_dicom":
        bad = folder / "IM9.dcm"
        bad.write_bytes(b"this is not a DICOM file" * 10)
    elif case == "truncated_pixels":
        bad = file_of(folder, 2)
        bad.write_bytes(bad.read_bytes()[:-100])  # pixel data cut short
    elif case == "truncated_header":
        bad = file_of(folder, 2)
        bad.write_bytes(bad.read_bytes()[:400])  # cut inside the data set
    elif case == "no_pixels":
        bad = folder / "IM9.dcm"
        ds = _dataset(None, series=pydicom.dcmread(file_of(folder, 0)).SeriesInstanceUID,
                      position=(0, 0, 99), orientation=AXIAL, instance=9)
        ds.save_as(bad, enforce_file_format=True)
    elif case == "two_series":
        bad = folder / "IM9.dcm"
        _dataset(stored_values()[0], series=generate_uid(), position=(0, 0, 99),
                 orientation=AXIAL, instance=9).save_as(bad, enforce_file_format=True)
    elif case == "size":
        bad = folder / "IM9.dcm"
        ds = _dataset(stored_values((1, H, W - 1))[0], series=pydicom.dcmread(
            file_of(folder, 0)).SeriesInstanceUID, position=(0, 0, 99), orientation=AXIAL,
            instance=9)
        ds.save_as(bad, enforce_file_format=True)
    elif case == "duplicate":
        ds = pydicom.dcmread(file_of(folder, 3))
        ds.ImagePositionPatient = pydicom.dcmread(file_of(folder, 1)).ImagePositionPatient
        ds.save_as(file_of(folder, 3))
        bad = file_of(folder, 3)
    else:
        raise AssertionError(case)
    return bad


@pytest.mark.parametrize("case, words", [
    ("not_dicom", "not a DICOM file"),
    ("truncated_pixels", "cannot decode the pixel data"),
    ("truncated_header", "truncated"),
    ("no_pixels", "without pixel data"),
    ("two_series", "one series per folder"),
    ("size", "same size"),
    ("duplicate", "same slice position"),
])
def test_errors_name_the_file(tmp_path, case, words):
    folder = write_series(tmp_path / "ser")
    bad = _break(folder, case)
    with pytest.raises(DataError) as info:
        read_dicom_series(folder)
    text = str(info.value)
    assert words in text and str(bad) in text, text


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden").write_bytes(b"x")
    for read in (read_dicom_series, dicom_shape):
        with pytest.raises(DataError, match="empty DICOM folder") as info:
            read(tmp_path / "empty")
        assert str(tmp_path / "empty") in str(info.value)


# --- NIfTI folders (medactive run --task segmentation) ---------------------------------------

def _mask(shape=(S, H, W)) -> np.ndarray:
    """A mask whose labelled square moves with the slice index (alignment check)."""
    mask = np.zeros(shape, dtype=np.uint8)
    for k in range(shape[0]):
        mask[k, k + 1:k + 4, 2 * k + 1:2 * k + 5] = 1
        mask[k, 8:10, 12:15] = 2
    return mask


def _dicom_nifti_folder(root: Path, seg) -> Path:
    """images/dcm0/ and images/dcm2/ DICOM series, images/case{1,3}.nii.gz NIfTI, all with
    NIfTI masks; val: case1, test: dcm2."""
    rng = np.random.default_rng(0)
    (root / "masks").mkdir(parents=True)
    for name in ("dcm0", "dcm2"):
        write_series(root / "images" / name)
        seg.write_nifti(root / "masks" / f"{name}.nii.gz", _mask(), dtype=np.uint8)
    for name in ("case1", "case3"):
        image, mask = seg.synthetic_volume(rng, 2, shape=(H, W))
        seg.write_nifti(root / "images" / f"{name}.nii.gz", image)
        seg.write_nifti(root / "masks" / f"{name}.nii.gz", np.minimum(mask, 2),
                        dtype=np.uint8)
    (root / "val.list").write_text("case1\n")
    (root / "test.list").write_text("dcm2\n")
    (root / "classes.txt").write_text("background\nsquare\nbar\n")
    return root


def test_nifti_folder_with_dicom_volumes(tmp_path, seg):
    from medactive.data.segmentation import (
        load_segmentation_data,
        looks_like_segmentation_data,
    )

    root = _dicom_nifti_folder(tmp_path / "seg", seg)
    assert looks_like_segmentation_data(root)
    data = load_segmentation_data(root)
    assert data.layout == "nifti-folder" and data.classes == ("background", "square", "bar")
    dicom_slices = [s for s in data.train if s.volume == "dcm0"]
    assert [s.id for s in dicom_slices] == [f"dcm0/{k}" for k in range(S)]
    assert len(data.train) == S + 2
    expected = normalise(expected_raw())
    for k, ref in enumerate(dicom_slices):
        image, mask = ref.load()
        np.testing.assert_allclose(image, expected[k], atol=1e-6)
        np.testing.assert_array_equal(mask, _mask()[k])
    (test,) = data.test
    assert test.id == "dcm2" and test.spacing == pytest.approx((GAP, ROW_SPACING, COL_SPACING))
    image, mask = test.load()
    assert image.shape == mask.shape == (S, H, W)
    np.testing.assert_array_equal(mask, _mask())
    assert data.spacing_source == "nifti/dicom header"


def test_nifti_folder_dicom_mask_shape_mismatch(tmp_path, seg):
    root = _dicom_nifti_folder(tmp_path / "seg", seg)
    seg.write_nifti(root / "masks" / "dcm0.nii.gz", _mask((S, W, H)), dtype=np.uint8)
    data = load_nifti_folder(root)
    with pytest.raises(DataError, match="differs from the DICOM series") as info:
        next(s for s in data.train if s.volume == "dcm0").load()
    assert str(root / "masks" / "dcm0.nii.gz") in str(info.value)


# --- segmentation annotation projects --------------------------------------------------------

@pytest.fixture
def dicom_project(tmp_path, seg):
    from medactive.project.workflow import init_project

    root = _dicom_nifti_folder(tmp_path / "vols", seg)
    write_series(root / "images" / "pool9")  # a pool volume without mask
    return init_project(tmp_path / "proj", root, task="segmentation", preset="smoke",
                        classes=["background", "square", "bar"]), root


def test_project_over_dicom_volumes(dicom_project, tmp_path):
    from medactive.project import volumes

    store, root = dicom_project
    pool = store.pool_ids()
    assert [p for p in pool if p.startswith("pool9/")] == [f"pool9/{k}" for k in range(S)]
    assert [p for p in pool if p.startswith("dcm0/")] == [f"dcm0/{k}" for k in range(S)]
    assert {s.id for s in store.samples("test")} == {"dcm2"}
    sample = store.sample("pool9/3")
    assert sample.sha256 == volumes.volume_sha256(root / "images" / "pool9")
    # initial labels from the NIfTI mask of the DICOM pool volume, slice by slice
    from PIL import Image

    labels = store.current_labels()
    assert {f"dcm0/{k}" for k in range(S)} <= set(labels)
    for k in range(S):
        png = np.asarray(Image.open(store.directory / labels[f"dcm0/{k}"].mask_path))
        np.testing.assert_array_equal(png, _mask()[k])
    # render and export a slice of a DICOM volume
    expected = np.round(normalise(expected_raw())[3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(volumes.render_slice(store, sample), expected)
    out = tmp_path / "exp"
    rel = volumes.export_slice(store, sample, out)
    assert rel == "images/pool9/3.nii.gz"
    exported = np.asarray(nib.load(str(out / rel)).dataobj)
    assert exported.shape == (W, H, 1)
    np.testing.assert_allclose(exported[:, :, 0].T, normalise(expected_raw())[3], atol=1e-6)
    assert (out / "images" / "pool9" / "3.png").is_file()
    template = nib.load(str(out / "masks" / "pool9" / "3.nii.gz"))
    assert template.shape == (W, H, 1)


def test_status_verify_sees_dicom_folders(dicom_project):
    from medactive.project.workflow import status

    store, root = dicom_project
    info = status(store, verify=True)
    assert info["missing_images"] == [] and info["changed_images"] == []
    ds = pydicom.dcmread(file_of(root / "images" / "pool9", 0))
    ds.RescaleIntercept = 7
    ds.save_as(file_of(root / "images" / "pool9", 0))
    info = status(store, verify=True)
    assert info["changed_images"] == [f"pool9/{k}" for k in range(S)]


def test_project_task_reads_dicom_eval_volume(dicom_project):
    pytest.importorskip("medactive.tasks.segmentation.task")
    from medactive.project.volumes import build_segmentation_project_task

    store, _ = dicom_project
    task, _ = build_segmentation_project_task(store, device="cpu", progress=False)
    (test,) = task.data.test
    assert test.id == "dcm2" and test.spacing == pytest.approx((GAP, ROW_SPACING, COL_SPACING))
    image, mask = test.load()
    np.testing.assert_allclose(image, normalise(expected_raw()), atol=1e-6)
    np.testing.assert_array_equal(mask, _mask())


def test_project_dicom_sha_changes_and_mask_shape_error(tmp_path, seg):
    from medactive.project import volumes
    from medactive.project.volumes import discover_segmentation_samples

    root = _dicom_nifti_folder(tmp_path / "vols", seg)
    before = volumes.volume_sha256(root / "images" / "dcm0")
    ds = pydicom.dcmread(file_of(root / "images" / "dcm0", 0))
    ds.RescaleIntercept = 0
    ds.save_as(file_of(root / "images" / "dcm0", 0))
    assert volumes.volume_sha256(root / "images" / "dcm0") != before
    seg.write_nifti(root / "masks" / "dcm0.nii.gz", _mask((S, W, H)), dtype=np.uint8)
    with pytest.raises(DataError, match="DICOM series") as info:
        discover_segmentation_samples(root)
    assert str(root / "masks" / "dcm0.nii.gz") in str(info.value)


@pytest.mark.slow
def test_medactive_run_trains_on_dicom_volumes(tmp_path, seg):
    root = _dicom_nifti_folder(tmp_path / "seg", seg)
    rows = run_smoke_segmentation(root, tmp_path / "run")
    assert [int(r["n_labeled"]) for r in rows] == [2, 4]
    assert all(0 <= float(r["test_dice_mean"]) <= 1 for r in rows)
