"""DICOM series (pydicom): a folder holding one series, read as an ``[S, H, W]`` volume.

The folder's files ``*.dcm`` (also ``.dicom``, ``.ima``) and files without an extension (or
with a numeric one, as in UID-named exports) are the slices; hidden files and ``DICOMDIR`` are
skipped. Every slice must be a single-frame grayscale image of the same series
(``SeriesInstanceUID``) and size. Slices are sorted by their position along the slice normal,
``ImagePositionPatient · (row × column direction of ImageOrientationPatient)``, ascending;
without positions, by ``InstanceNumber``. Pixel rows are ``H`` and columns ``W``; stored values
are mapped by ``RescaleSlope``/``RescaleIntercept``. The spacing ``(s_z, s_y, s_x)`` comes from
the distance between slice positions (else ``SpacingBetweenSlices``, then ``SliceThickness``)
and ``PixelSpacing`` = (row spacing, column spacing). Images are min-max normalised per volume to
``[0, 1]`` as NIfTI images are (:func:`~medactive.data.segmentation.base.normalise`).

A NIfTI mask of a DICOM series is read like any NIfTI mask, ``(x, y, z)`` transposed to
``[S, H, W]``: ``x`` is the DICOM column, ``y`` the row and ``z`` the slice in sorted order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from medactive.data.segmentation.base import Spacing, natural_key, normalise
from medactive.errors import DataError

logger = logging.getLogger(__name__)

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
SKIPPED_NAMES = ("dicomdir",)
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_POSITION_TOL = 1e-3  # mm: slices closer than this along the normal are duplicates


def dicom_files(folder: str | Path) -> list[Path]:
    """The candidate slice files of a series folder in natural name order (lists the folder)."""
    out = []
    for path in Path(folder).iterdir():
        name = path.name
        if name.startswith(".") or name.lower() in SKIPPED_NAMES or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in DICOM_SUFFIXES or suffix == "" or suffix[1:].isdigit():
            out.append(path)
    return sorted(out, key=lambda p: natural_key(p.name))


def is_dicom_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder with candidate DICOM files (reads no file)."""
    path = Path(path)
    try:
        return path.is_dir() and bool(dicom_files(path))
    except OSError:
        return False


def _read(path: Path, *, pixels: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except InvalidDicomError as exc:
        raise DataError(f"{path}: not a DICOM file ({exc})") from exc
    except Exception as exc:  # truncated or corrupt file: pydicom raises many types
        raise DataError(f"{path}: cannot read the DICOM file ({type(exc).__name__}: {exc})"
                        ) from exc


def _floats(ds, keyword: str, n: int, path: Path) -> np.ndarray | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        arr = np.asarray([float(v) for v in (value if n > 1 else [value])], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: invalid {keyword} {value!r}") from exc
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise DataError(f"{path}: invalid {keyword} {value!r}; expected {n} numbers")
    return arr


def _check_slice(path: Path, ds, *, pixels: bool) -> None:
    if len(ds) == 0:
        raise DataError(f"{path}: empty or truncated DICOM file (no data elements after the "
                        "file meta header)")
    if pixels and not any(tag in ds for tag in _PIXEL_TAGS):
        raise DataError(f"{path}: DICOM file without pixel data (not an image slice, or "
                        "truncated); keep only the series' image files in the folder")
    if "Rows" not in ds or "Columns" not in ds:
        raise DataError(f"{path}: DICOM file without Rows/Columns (not an image slice, or "
                        "truncated); keep only the series' image files in the folder")
    frames = ds.get("NumberOfFrames")
    if frames not in (None, "") and int(frames) > 1:
        raise DataError(f"{path}: multi-frame DICOM ({int(frames)} frames) is not supported; "
                        "give one file per slice")
    samples = ds.get("SamplesPerPixel")
    if samples not in (None, "") and int(samples) != 1:
        raise DataError(f"{path}: {int(samples)} samples per pixel; only grayscale series are "
                        "supported")


def _scan(folder: str | Path, *, pixels: bool) -> tuple[list[tuple[Path, Any]], Spacing]:
    """Read and check every slice of ``folder``: ``([(path, dataset)] sorted, spacing)``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; a DICOM series is a folder of slice files")
    try:
        files = dicom_files(folder)
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the DICOM folder ({exc})") from exc
    if not files:
        raise DataError(f"{folder}: empty DICOM folder (no *.dcm or extension-less files)")
    slices = []
    for path in files:
        ds = _read(path, pixels=pixels)
        _check_slice(path, ds, pixels=pixels)
        slices.append((path, ds))
    first_path, first = slices[0]
    uid = first.get("SeriesInstanceUID")
    size = (int(first.Rows), int(first.Columns))
    for path, ds in slices[1:]:
        if ds.get("SeriesInstanceUID") != uid:
            raise DataError(f"{path}: belongs to series {ds.get('SeriesInstanceUID')} but "
                            f"{first_path.name} to {uid}; put one series per folder")
        if (int(ds.Rows), int(ds.Columns)) != size:
            raise DataError(f"{path}: {int(ds.Rows)} rows x {int(ds.Columns)} columns but "
                            f"{first_path.name} has {size[0]} x {size[1]}; all slices of a "
                            "series must have the same size")
    slices, gap = _sort(slices)
    return slices, (_slice_spacing(slices, gap), *_pixel_spacing(slices[0]))


def _sort(slices: list[tuple[Path, Any]]) -> tuple[list[tuple[Path, Any]], float | None]:
    """Slices in position order (else InstanceNumber) and the median gap between positions."""
    if len(slices) == 1:
        return slices, None
    geometry = [(_floats(ds, "ImagePositionPatient", 3, p),
                 _floats(ds, "ImageOrientationPatient", 6, p)) for p, ds in slices]
    if all(pos is not None and ori is not None for pos, ori in geometry):
        orientation = geometry[0][1]
        for (path, _), (_, ori) in zip(slices, geometry, strict=True):
            if not np.allclose(ori, orientation, atol=1e-3):
                raise DataError(f"{path}: ImageOrientationPatient {list(ori)} differs from "
                                f"{slices[0][0].name}'s {list(orientation)}; slices of one "
                                "volume must be parallel")
        normal = np.cross(orientation[:3], orientation[3:])
        keys = [float(np.dot(pos, normal)) for pos, _ in geometry]
        order = np.argsort(keys, kind="stable")
        ordered = [slices[i] for i in order]
        sorted_keys = np.asarray([keys[i] for i in order])
        gaps = np.diff(sorted_keys)
        for i, g in enumerate(gaps):
            if g < _POSITION_TOL:
                raise DataError(f"{ordered[i + 1][0]}: same slice position "
                                f"({sorted_keys[i + 1]:.4g} mm along the normal) as "
                                f"{ordered[i][0].name}; duplicate slices in the series")
        gap = float(np.median(gaps))
        if float(gaps.max() - gaps.min()) > max(0.01 * gap, _POSITION_TOL):
            logger.warning("%s: uneven slice gaps (%.4g to %.4g mm); using the median %.4g mm",
                           slices[0][0].parent, gaps.min(), gaps.max(), gap)
        return ordered, gap
    numbers = []
    for path, ds in slices:
        number = ds.get("InstanceNumber")
        if number in (None, ""):
            raise DataError(f"{path}: cannot order the slices: no ImagePositionPatient/"
                            "ImageOrientationPatient and no InstanceNumber")
        numbers.append(int(number))
    order = np.argsort(numbers, kind="stable")
    ordered = [slices[i] for i in order]
    for i in range(1, len(order)):
        if numbers[order[i]] == numbers[order[i - 1]]:
            raise DataError(f"{ordered[i][0]}: same InstanceNumber {numbers[order[i]]} as "
                            f"{ordered[i - 1][0].name} and no slice positions; duplicate slices "
                            "in the series")
    return ordered, None


def _slice_spacing(slices: list[tuple[Path, Any]], gap: float | None) -> float:
    if gap is not None:
        return gap
    path, ds = slices[0]
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = _floats(ds, keyword, 1, path)
        if value is not None and value[0] > 0:
            return float(value[0])
    return 1.0


def _pixel_spacing(first: tuple[Path, Any]) -> tuple[float, float]:
    path, ds = first
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _floats(ds, keyword, 2, path)
        if value is not None:
            if not np.all(value > 0):
                raise DataError(f"{path}: invalid {keyword} {list(value)}")
            return float(value[0]), float(value[1])
    logger.warning("%s: no PixelSpacing; assuming 1 mm", path)
    return 1.0, 1.0


def dicom_header(folder: str | Path) -> tuple[tuple[int, int, int], Spacing]:
    """``([S, H, W] shape, spacing (s_z, s_y, s_x))`` of a series from its headers alone.

    Raises:
        DataError: as :func:`read_dicom_series`, except for missing pixel data.
    """
    slices, spacing = _scan(folder, pixels=False)
    ds = slices[0][1]
    return (len(slices), int(ds.Rows), int(ds.Columns)), spacing


def dicom_shape(folder: str | Path) -> tuple[int, int, int]:
    """``[S, H, W]`` shape of a series from its headers alone (``stop_before_pixels``)."""
    return dicom_header(folder)[0]


def read_dicom_raw(folder: str | Path) -> tuple[np.ndarray, Spacing]:
    """The rescaled values (``stored * RescaleSlope + RescaleIntercept``, float32) as
    ``[S, H, W]`` in slice-position order, with the spacing ``(s_z, s_y, s_x)`` in mm."""
    slices, spacing = _scan(folder, pixels=True)
    out = np.empty((len(slices), int(slices[0][1].Rows), int(slices[0][1].Columns)),
                   dtype=np.float32)
    for k, (path, ds) in enumerate(slices):
        try:
            stored = np.asarray(ds.pixel_array, dtype=np.float64)
        except Exception as exc:  # unsupported compression, truncated pixel data, ...
            raise DataError(f"{path}: cannot decode the pixel data ({type(exc).__name__}: "
                            f"{exc})") from exc
        slope = _floats(ds, "RescaleSlope", 1, path)
        intercept = _floats(ds, "RescaleIntercept", 1, path)
        values = stored * (1.0 if slope is None else slope[0]) + (
            0.0 if intercept is None else intercept[0])
        if values.shape != out.shape[1:]:
            raise DataError(f"{path}: pixel data shape {values.shape} does not match "
                            f"Rows x Columns {out.shape[1:]}")
        out[k] = values
    if not np.all(np.isfinite(out)):
        raise DataError(f"{folder}: the series holds NaN or infinite values")
    return out, spacing


def read_dicom_series(folder: str | Path, *, mask: bool = False) -> tuple[np.ndarray, Spacing]:
    """Read a DICOM series folder as ``[S, H, W]`` with spacing ``(s_z, s_y, s_x)`` in mm.

    Same contract as :func:`~medactive.data.segmentation.nifti.read_nifti`.

    Args:
        folder: folder holding the slice files of one series.
        mask: return the rescaled values instead of a float32 image min-max normalised to
            ``[0, 1]``.

    Raises:
        DataError: empty folder, a file that is not DICOM or is corrupt, a file without pixel
            data, two series in one folder, slices of different size or orientation, duplicate
            slice positions; the message names the file.
    """
    data, spacing = read_dicom_raw(folder)
    return (data if mask else normalise(data)), spacing
