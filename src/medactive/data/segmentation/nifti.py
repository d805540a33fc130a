"""NIfTI volumes (nibabel) and generic folders of NIfTI (or DICOM) image/mask pairs.

A NIfTI array is stored ``(x, y, z)``; it is transposed to ``[S, H, W] = (z, y, x)`` so slices
come first, as in the SSL4MIS h5 files, and the spacing ``(s_z, s_y, s_x)`` is read from the
header's zooms. Images are min-max normalised per volume to ``[0, 1]`` (the SSL4MIS
preprocessing of ACDC).

A generic folder holds pairs in one of two arrangements:

- ``images/`` (or ``imagesTr/``) beside ``masks/`` (or ``labels/``, ``labelsTr/``): files with
  the same name (an nnU-Net channel suffix ``_0000`` on the image is ignored); an image may
  also be a sub-folder ``images/NAME/`` holding one DICOM series (see
  :mod:`medactive.data.segmentation.dicom`) with its mask ``masks/NAME.nii.gz``;
- a flat folder with ``NAME.nii.gz`` beside ``NAME_mask.nii.gz`` (or ``_gt``, ``_seg``,
  ``_label``).

Class names come from an optional ``classes.txt`` (one per line, background first); without it
the classes are ``background, class_1 .. class_K`` for the largest mask value ``K`` found. The
split comes from optional ``val.list``/``test.list`` files naming volumes (the rest is train),
else a fixed 70/10/20 split by volume.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medactive.data.segmentation.base import (
    SegmentationData,
    SliceRef,
    Spacing,
    VolumeRef,
    check_pair,
    natural_key,
    normalise,
    read_classes,
    read_list,
    split_groups,
)
from medactive.errors import DataError

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")
IMAGE_DIRS = ("images", "imagesTr", "image", "imgs")
MASK_DIRS = ("masks", "labels", "labelsTr", "mask", "label", "gt", "segmentations")
MASK_SUFFIXES = ("_gt", "_mask", "_seg", "_label", "_labels")


def nifti_stem(path: Path) -> str | None:
    """File name without ``.nii``/``.nii.gz``, or ``None`` for a non-NIfTI file."""
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def volume_stem(path: Path) -> str | None:
    """Volume name of an entry of an image folder: a NIfTI file's stem, a DICOM series
    folder's name, else ``None`` (lists a folder, reads no file)."""
    if path.is_dir():
        from medactive.data.segmentation.dicom import is_dicom_folder

        return path.name if not path.name.startswith(".") and is_dicom_folder(path) else None
    return nifti_stem(path)


def nifti_shape(path: str | Path) -> tuple[int, int, int]:
    """``[S, H, W]`` shape of a NIfTI file from its header alone.

    Raises:
        DataError: unreadable header or unsupported number of dimensions.
    """
    import nibabel as nib

    try:
        shape = tuple(int(s) for s in nib.load(str(path)).shape)
    except Exception as exc:  # nibabel raises many types for a bad file
        raise DataError(f"{path}: cannot read the NIfTI header ({exc})") from exc
    return _to_shs(shape, path)


def is_dicom_volume(path: str | Path) -> bool:
    """Whether a volume path is a DICOM series folder (a NIfTI volume is a file)."""
    return Path(path).is_dir()


def read_volume_file(path: str | Path, *, mask: bool = False) -> tuple[np.ndarray, Spacing]:
    """:func:`read_nifti` for a NIfTI file, or read the DICOM series folder ``path``."""
    if is_dicom_volume(path):
        from medactive.data.segmentation.dicom import read_dicom_series

        return read_dicom_series(path, mask=mask)
    return read_nifti(path, mask=mask)


def volume_shape(path: str | Path) -> tuple[int, int, int]:
    """``[S, H, W]`` of a NIfTI file or DICOM series folder from its header(s) alone."""
    if is_dicom_volume(path):
        from medactive.data.segmentation.dicom import dicom_shape

        return dicom_shape(path)
    return nifti_shape(path)


def volume_header(path: str | Path) -> tuple[tuple[int, int, int], Spacing]:
    """``([S, H, W], spacing (s_z, s_y, s_x))`` of a NIfTI file or DICOM series folder from
    its header(s) alone."""
    if is_dicom_volume(path):
        from medactive.data.segmentation.dicom import dicom_header

        return dicom_header(path)
    import nibabel as nib

    shape = nifti_shape(path)
    try:
        zooms = tuple(float(z) for z in nib.load(str(path)).header.get_zooms())
    except Exception as exc:
        raise DataError(f"{path}: cannot read the NIfTI header ({exc})") from exc
    return shape, (zooms[2] if len(zooms) > 2 else 1.0, zooms[1], zooms[0])


def _to_shs(shape: tuple[int, ...], path) -> tuple[int, int, int]:
    shape = tuple(shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 2:
        return (1, shape[1], shape[0])
    if len(shape) != 3:
        raise DataError(f"{path}: NIfTI array has shape {shape}; expected a 2D or 3D volume "
                        "(split 4D cine files into one file per frame)")
    return (shape[2], shape[1], shape[0])


def read_nifti(path: str | Path, *, mask: bool = False) -> tuple[np.ndarray, Spacing]:
    """Read a NIfTI image or mask as ``[S, H, W]`` with spacing ``(s_z, s_y, s_x)`` in mm.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        mask: return the raw stored values (class indices) instead of a float32 image
            min-max normalised to ``[0, 1]``.

    Raises:
        DataError: the file cannot be read or is not 2D/3D; the message names it.
    """
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj) if mask else img.get_fdata(dtype=np.float32)
        zooms = tuple(float(z) for z in img.header.get_zooms())
    except DataError:
        raise
    except Exception as exc:  # corrupt gzip, truncated file, not NIfTI, ...
        raise DataError(f"{path}: cannot read the NIfTI file ({exc})") from exc
    data = np.asarray(data)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    _to_shs(data.shape, path)
    if data.ndim == 2:
        data = data[:, :, None]
        zooms = (*zooms[:2], 1.0)
    data = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    spacing = (zooms[2], zooms[1], zooms[0])
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise DataError(f"{path}: invalid voxel spacing {zooms[:3]} in the NIfTI header")
    if not mask:
        data = normalise(data)
    return data, spacing  # type: ignore[return-value]


class _VolumeCache:
    """Keeps the last volume read, so the slices of one volume read the files once."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: tuple[np.ndarray, np.ndarray] | None = None

    def get(self, key: tuple, load) -> tuple[np.ndarray, np.ndarray]:
        if key != self._key:
            self._value = load()
            self._key = key
        assert self._value is not None
        return self._value


def read_pair(image_path: Path, mask_path: Path, n_classes: int,
              classes: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray, Spacing]:
    """Read and check an image/mask pair: ``(image [S,H,W], mask [S,H,W], spacing)``.

    The image is a NIfTI file or a DICOM series folder, the mask a NIfTI file.
    """
    image, spacing = read_volume_file(image_path)
    mask, _ = read_nifti(mask_path, mask=True)
    if is_dicom_volume(image_path) and image.shape != mask.shape:
        raise DataError(f"{mask_path}: mask shape [S, H, W] = {mask.shape} differs from the "
                        f"DICOM series {image_path}'s {image.shape} (a NIfTI mask of a DICOM "
                        "series is stored (x = column, y = row, z = slice in position order))")
    image, mask = check_pair(image, mask, n_classes, str(mask_path), classes=classes)
    return image, mask, spacing


def volume_refs(pairs: list[tuple[str, str, Path, Path]], n_classes: int,
                classes: tuple[str, ...], *, slice_id=None
                ) -> tuple[list[SliceRef], list[VolumeRef]]:
    """Slice and volume references for ``(volume_id, group, image, mask)`` pairs.

    ``slice_id(volume_id, k)`` names slice ``k`` (0-based along ``S``); without it no slice
    references are made (evaluation volumes). Only headers are read here (for the number of
    slices and the spacing); data are read when a loader is called.
    """
    cache = _VolumeCache()
    slices: list[SliceRef] = []
    volumes: list[VolumeRef] = []
    for volume_id, group, image_path, mask_path in pairs:
        shape, spacing = volume_header(image_path)

        def load(image_path=image_path, mask_path=mask_path):
            image, mask, _ = read_pair(image_path, mask_path, n_classes, classes)
            return image, mask

        def load_cached(load=load, key=(str(image_path), str(mask_path))):
            return cache.get(key, load)

        volumes.append(VolumeRef(volume_id, group, str(image_path), spacing, load))
        for k in range(shape[0] if slice_id is not None else 0):
            def load_slice(k=k, load_cached=load_cached):
                image, mask = load_cached()
                return image[k], mask[k]

            slices.append(SliceRef(slice_id(volume_id, k), group, volume_id, str(image_path),
                                   load_slice))
    return slices, volumes


def find_pairs(path: Path) -> list[tuple[str, Path, Path]]:
    """``(volume_id, image, mask)`` pairs of a generic folder, sorted by id (an image may be a
    DICOM series folder ``images/NAME/``).

    Raises:
        DataError: an image without a mask (or the reverse) in the images/masks arrangement.
    """
    image_dir = next((path / d for d in IMAGE_DIRS if (path / d).is_dir()), None)
    mask_dir = next((path / d for d in MASK_DIRS if (path / d).is_dir()), None)
    pairs: list[tuple[str, Path, Path]] = []
    if image_dir is not None and mask_dir is not None:
        masks = {nifti_stem(p): p for p in mask_dir.iterdir() if nifti_stem(p)}
        for image in sorted(image_dir.iterdir()):
            stem = volume_stem(image)
            if stem is None:
                continue
            key = stem.removesuffix("_0000")
            mask = masks.pop(key, None) or masks.pop(stem, None)
            if mask is None:
                raise DataError(f"{image}: no mask named {key}.nii.gz in {mask_dir}")
            pairs.append((key, image, mask))
        if masks:
            name = min(masks)
            raise DataError(f"{masks[name]}: mask without an image in {image_dir}")
    else:
        files = {nifti_stem(p): p for p in path.iterdir() if nifti_stem(p)}
        for stem, image in files.items():
            if stem.endswith(MASK_SUFFIXES):
                continue
            mask = next((files[stem + s] for s in MASK_SUFFIXES if stem + s in files), None)
            if mask is not None:
                pairs.append((stem, image, mask))
    return sorted(pairs, key=lambda p: natural_key(p[0]))


def is_nifti_folder(path: Path) -> bool:
    """Whether ``path`` holds NIfTI image/mask pairs (reads no file)."""
    try:
        return bool(find_pairs(path))
    except DataError:
        return True  # it is such a folder, with a problem that loading will report


def load_nifti_folder(path: str | Path) -> SegmentationData:
    """Read a folder of NIfTI (or DICOM series) image/mask pairs (see the module docstring).

    Slice ids are ``"<volume>/<k>"`` with ``k`` the 0-based slice index along ``S``.

    Raises:
        DataError: no pairs, unmatched files, unreadable headers, a list naming an unknown
            volume; image/mask errors surface when a volume is read, naming its file.
    """
    path = Path(path)
    pairs = find_pairs(path)
    if not pairs:
        raise DataError(f"{path}: no NIfTI (or DICOM series) image/mask pairs found")
    classes, class_note = read_classes(path, [m for _, _, m in pairs],
                                       lambda m: read_nifti(m, mask=True)[0])
    ids = [p[0] for p in pairs]
    notes = [class_note]
    if (path / "test.list").is_file() or (path / "val.list").is_file():
        named = {}
        for split in ("val", "test"):
            f = path / f"{split}.list"
            named[split] = set(read_list(f)) if f.is_file() else set()
            unknown = named[split] - set(ids)
            if unknown:
                raise DataError(f"{f}: names volumes not in {path}: {sorted(unknown)[:5]}")
        if not named["val"] or not named["test"]:
            raise DataError(f"{path}: give both val.list and test.list (one volume id a line)")
        val, test = named["val"], named["test"]
        train = set(ids) - val - test
        notes.append("split from val.list/test.list")
    else:
        train, val, test = split_groups(ids)
        notes.append("fixed 70/10/20 split by volume (seed 0); add val.list/test.list to choose")
    by_split = {s: [(i, i, im, m) for i, im, m in pairs if i in members]
                for s, members in (("train", train), ("val", val), ("test", test))}
    if not by_split["train"]:
        raise DataError(f"{path}: no training volumes left after the val/test split")
    train_slices, _ = volume_refs(by_split["train"], len(classes), classes,
                                  slice_id=lambda v, k: f"{v}/{k}")
    _, val_volumes = volume_refs(by_split["val"], len(classes), classes)
    _, test_volumes = volume_refs(by_split["test"], len(classes), classes)
    n_dicom = sum(is_dicom_volume(p[1]) for p in pairs)
    if n_dicom:
        notes.append(f"{n_dicom} of {len(pairs)} volumes are DICOM series (masks: NIfTI)")
    return SegmentationData(name=path.name, source=str(path), layout="nifti-folder",
                            classes=classes, train=train_slices, val=val_volumes,
                            test=test_volumes, frames="all",
                            spacing_source="nifti/dicom header" if n_dicom else "nifti header",
                            notes=notes)
