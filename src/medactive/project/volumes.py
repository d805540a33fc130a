"""Segmentation projects: NIfTI volumes or DICOM series as a pool of 2D slices, masks per slice.

Layout of the image folder (the arrangements of
:mod:`medactive.segmentation.data_nifti`, where masks are optional)::

    FOLDER/images/NAME.nii.gz   (or imagesTr/)   FOLDER/NAME.nii.gz
    FOLDER/masks/NAME.nii.gz    (optional)       FOLDER/NAME_mask.nii.gz  (optional)
    FOLDER/images/NAME/*.dcm                     a DICOM series folder as volume NAME (mask:
                                                 masks/NAME.nii.gz, x = column, y = row)
    FOLDER/val.list, FOLDER/test.list            volumes (one NAME a line) for evaluation
    FOLDER/classes.txt                           class names, background first (or --classes)

A volume is read as ``[S, H, W]`` (NIfTI ``(x, y, z)`` transposed, as in
:func:`~medactive.segmentation.data_nifti.read_nifti`; DICOM slices sorted by position with
rows as ``H``, as in :func:`~medactive.segmentation.data_dicom.read_dicom_series`); slice ``k``
of volume ``NAME`` is the sample ``NAME/k`` with a ``[H, W]`` mask. Volumes named in
``val.list``/``test.list`` must have masks: they are evaluated in 3D and never queried. A pool
volume that already has a mask gives its slices initial labels. Masks of slices (imported,
uploaded, initial) are kept inside the project as ``masks/<content hash>.png`` or the uploaded
NIfTI, so a label never changes behind the database's back.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from medactive.errors import ConfigError, DataError
from medactive.project.store import ProjectStore, Sample, atomic_write_bytes, file_sha256

logger = logging.getLogger(__name__)

_cache: dict[str, Any] = {"key": None, "value": None}


def _nifti():
    from medactive.segmentation import data_nifti

    return data_nifti


def _find_volumes(root: Path) -> list[tuple[str, Path, Path | None]]:
    """``(volume_id, image, mask or None)`` sorted by id."""
    nif = _nifti()
    image_dir = next((root / d for d in nif.IMAGE_DIRS if (root / d).is_dir()), None)
    mask_dir = next((root / d for d in nif.MASK_DIRS if (root / d).is_dir()), None)
    out = []
    if image_dir is not None:
        masks = ({nif.nifti_stem(p): p for p in mask_dir.iterdir() if nif.nifti_stem(p)}
                 if mask_dir is not None else {})
        for image in sorted(image_dir.iterdir()):
            stem = nif.volume_stem(image)
            if stem is None:
                continue
            key = stem.removesuffix("_0000")
            out.append((key, image, masks.get(key) or masks.get(stem)))
    else:
        files = {nif.nifti_stem(p): p for p in root.iterdir() if nif.nifti_stem(p)}
        for stem, image in files.items():
            if stem.endswith(nif.MASK_SUFFIXES):
                continue
            mask = next((files[stem + s] for s in nif.MASK_SUFFIXES if stem + s in files), None)
            out.append((stem, image, mask))
    return sorted(out, key=lambda v: nif.natural_key(v[0]))


def discover_segmentation_samples(root: Path):
    """Samples rows and meta of a segmentation project over ``root`` (see module docstring).

    Returns:
        ``(rows, meta)``: ``(id, path, frame, sha256, split)`` rows and the meta entries
        ``volumes`` (``{volume_id: {"path", "mask", "shape", "split"}}``) and, when
        ``classes.txt`` exists, ``classes_file``.
    """
    nif = _nifti()
    volumes = _find_volumes(root)
    if not volumes:
        raise DataError(f"{root}: no NIfTI volumes (.nii.gz, .nii) or DICOM series folders "
                        "(images/NAME/) found")
    ids = {v[0] for v in volumes}
    split_of = {}
    for split in ("val", "test"):
        f = root / f"{split}.list"
        if f.is_file():
            for name in nif.read_list(f):
                if name not in ids:
                    raise DataError(f"{f}: names volume {name!r} that is not in {root}")
                split_of[name] = split
    rows, info = [], {}
    for vid, image, mask in volumes:
        shape = nif.volume_shape(image)
        split = split_of.get(vid, "pool")
        if split != "pool" and mask is None:
            raise DataError(f"{image}: listed in {split}.list but has no mask; evaluation "
                            "volumes need masks")
        if mask is not None and nif.nifti_shape(mask) != shape:
            raise DataError(f"{mask}: mask shape {nif.nifti_shape(mask)} differs from the "
                            f"image's {shape}" + (" (a NIfTI mask of a DICOM series is stored "
                            "(x = column, y = row, z = slice in position order))"
                            if nif.is_dicom_volume(image) else ""))
        digest = volume_sha256(image)
        rel = image.relative_to(root).as_posix()
        info[vid] = {"path": rel, "mask": None if mask is None else mask.relative_to(
            root).as_posix(), "shape": list(shape), "split": split}
        if split == "pool":
            rows += [(f"{vid}/{k}", rel, k, digest, "pool") for k in range(shape[0])]
        else:
            rows.append((vid, rel, None, digest, split))
    meta: dict[str, Any] = {"volumes": info}
    classes_file = root / "classes.txt"
    if classes_file.is_file():
        meta["classes_file"] = [n.strip() for n in classes_file.read_text().splitlines()
                                if n.strip()]
    return rows, meta


def volume_sha256(path: Path) -> str:
    """:func:`file_sha256` of a NIfTI file; for a DICOM series folder, the hash of its slice
    files' names and contents in sorted order."""
    if not path.is_dir():
        return file_sha256(path)
    from medactive.segmentation.data_dicom import dicom_files

    digest = hashlib.sha256()
    for f in sorted(dicom_files(path), key=lambda f: f.name):
        digest.update(f"{f.name}\0{file_sha256(f)}\n".encode())
    return digest.hexdigest()


def _mtime_key(path: Path) -> tuple:
    """Changes when a file (or a DICOM folder's slice file) is rewritten, added or removed."""
    if not path.is_dir():
        return (os.stat(path).st_mtime_ns,)
    from medactive.segmentation.data_dicom import dicom_files

    return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in dicom_files(path))


def _volume_of(store: ProjectStore, sample: Sample) -> tuple[str, dict]:
    volumes = store.get_meta("volumes", {})
    vid = sample.id.rsplit("/", 1)[0] if sample.frame is not None else sample.id
    return vid, volumes[vid]


def sample_shape(store: ProjectStore, sample_id: str) -> tuple[int, int]:
    """``(H, W)`` of a slice sample: the shape its mask must have."""
    sample = store.sample(sample_id)
    if sample is None or sample.frame is None:
        raise DataError(f"{sample_id!r} is not a slice of the project's pool")
    _, vol = _volume_of(store, sample)
    return int(vol["shape"][1]), int(vol["shape"][2])


def read_volume(path: Path) -> np.ndarray:
    """The normalised ``[S, H, W]`` image of a volume, a NIfTI file or DICOM series folder (the
    last one read is cached)."""
    key = (str(path), _mtime_key(path))
    if _cache["key"] != key:
        _cache["value"] = _nifti().read_volume_file(path)[0]
        _cache["key"] = key
    return _cache["value"]


def render_slice(store: ProjectStore, sample: Sample) -> np.ndarray:
    """A slice as ``uint8`` ``[H, W]`` (volume min-max scaled; the page applies a window)."""
    if sample.frame is None:
        raise DataError(f"{sample.id!r} is an evaluation volume, not a slice")
    volume = read_volume(store.images_root / sample.path)
    return np.round(np.clip(volume[int(sample.frame)], 0, 1) * 255).astype(np.uint8)


def read_slice_mask(path: str | Path) -> np.ndarray:
    """A 2D mask file as ``[H, W]``: PNG rows are ``H``; NIfTI ``(x, y)`` is transposed."""
    path = Path(path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        arr, _ = _nifti().read_nifti(path, mask=True)
        if arr.shape[0] != 1:
            raise DataError(f"{path}: a slice mask must have one slice, got {arr.shape[0]}")
        return arr[0]
    from medactive.project.importer import read_mask

    return read_mask(path)


def _check_slice_mask(arr: np.ndarray, shape: tuple[int, int], n_classes: int, where: str):
    if tuple(arr.shape) != tuple(shape):
        raise DataError(f"{where}: mask shape {tuple(arr.shape)} does not match the slice "
                        f"{tuple(shape)}")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)) or np.any(
            arr != np.round(arr)) or arr.min() < 0 or arr.max() >= n_classes:
        raise DataError(f"{where}: mask values must be integers 0..{n_classes - 1}")


def _png_bytes(mask: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _store_png(store: ProjectStore, mask: np.ndarray) -> str:
    data = _png_bytes(mask)
    rel = f"masks/{hashlib.sha256(data).hexdigest()[:24]}.png"
    if not (store.directory / rel).is_file():
        atomic_write_bytes(store.directory / rel, data)
    return rel


def save_uploaded_mask(store: ProjectStore, sample: Sample, data: bytes, suffix: str) -> str:
    """Check an uploaded mask (shape, values) and keep it as a PNG in the project."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            arr = read_slice_mask(path)
        except DataError as exc:
            raise DataError(f"uploaded mask for {sample.id!r}: {exc}".replace(str(path), "file"))
    _check_slice_mask(arr, sample_shape(store, sample.id), len(store.classes),
                      f"uploaded mask for {sample.id!r}")
    return _store_png(store, arr)


def initial_mask_labels(store: ProjectStore, meta: dict[str, Any]) -> list[tuple[str, str]]:
    """Write the masks of pool volumes that have one as per-slice PNGs; ``(id, mask_path)``."""
    out = []
    root = Path(meta["images_root"])
    for vid, vol in meta["volumes"].items():
        if vol["split"] != "pool" or not vol["mask"]:
            continue
        mask, _ = _nifti().read_nifti(root / vol["mask"], mask=True)
        for k in range(mask.shape[0]):
            _check_slice_mask(mask[k], tuple(vol["shape"][1:]), len(meta["classes"]),
                              f"{root / vol['mask']} slice {k}")
            out.append((f"{vid}/{k}", _store_png(store, mask[k])))
    return out


def export_slice(store: ProjectStore, sample: Sample, out: Path) -> str:
    """Write slice ``sample`` as ``images/<id>.nii.gz`` and ``.png`` and an empty mask template
    ``masks/<id>.nii.gz`` under ``out``; returns the NIfTI image's relative path."""
    import nibabel as nib

    _, _vol = _volume_of(store, sample)
    volume = read_volume(store.images_root / sample.path)
    image = volume[int(sample.frame)]
    h, w = image.shape

    def nii_bytes(arr_hw: np.ndarray, dtype) -> bytes:
        img = nib.Nifti1Image(np.ascontiguousarray(arr_hw.T[:, :, None]).astype(dtype),
                              np.eye(4))
        return _gz(img)

    rel = f"images/{sample.id}.nii.gz"
    atomic_write_bytes(out / rel, nii_bytes(image, np.float32))
    atomic_write_bytes(out / f"images/{sample.id}.png", _png_bytes(
        np.round(np.clip(image, 0, 1) * 255)))
    atomic_write_bytes(out / f"masks/{sample.id}.nii.gz", nii_bytes(np.zeros((h, w)), np.uint8))
    return rel


def _gz(img) -> bytes:
    import gzip

    return gzip.compress(img.to_bytes(), mtime=0)


def build_segmentation_project_task(store: ProjectStore, *, device: str, progress: bool):
    """The :class:`~medactive.segmentation.task.SegmentationTask` of the project and the
    function that reads a stored mask label."""
    from medactive.segmentation.dataset import SegmentationData, SliceRef, VolumeRef
    from medactive.segmentation.task import SegmentationTask

    nif = _nifti()
    meta = store.meta()
    root = Path(meta["images_root"])
    classes = tuple(meta["classes"])
    volumes = meta["volumes"]
    pool = store.samples("pool")

    def slice_loader(sample: Sample, shape):
        def load():
            image = read_volume(root / sample.path)[int(sample.frame)]
            # unlabelled slices get an empty placeholder mask: labels come from the store
            return image, np.zeros(shape, dtype=np.uint8)
        return load

    train = []
    for s in pool:
        vid = s.id.rsplit("/", 1)[0]
        shape = tuple(volumes[vid]["shape"][1:])
        train.append(SliceRef(s.id, vid, vid, str(root / s.path), slice_loader(s, shape)))
    evals: dict[str, list] = {"val": [], "test": []}
    for vid, vol in volumes.items():
        if vol["split"] == "pool":
            continue
        image_path, mask_path = root / vol["path"], root / vol["mask"]

        def load(image_path=image_path, mask_path=mask_path):
            image, mask, _ = nif.read_pair(image_path, mask_path, len(classes), classes)
            return image, mask

        _, spacing = (nif.volume_header(image_path) if nif.is_dicom_volume(image_path)
                      else nif.read_nifti(image_path, mask=True))
        evals[vol["split"]].append(VolumeRef(vid, vid, str(image_path), spacing, load))
    if not evals["val"] or not evals["test"]:
        raise ConfigError(f"{root}: a segmentation project trains only with evaluation volumes: "
                          "name at least one volume (with its mask) in val.list and one in "
                          "test.list, then create the project again")
    data = SegmentationData(name=store.directory.name, source=str(root), layout="project",
                            classes=classes, train=train, val=evals["val"], test=evals["test"],
                            frames="all", spacing_source="nifti header")
    from medactive.segmentation.presets import get_preset

    preset = get_preset(meta.get("preset") or "cpu", iterations=meta.get("epochs"))
    task = SegmentationTask(data, preset, device=device, seed=int(meta.get("seed", 0)),
                            progress=progress)

    def load_model(state):
        model = task.new_model(0)
        model.load_state_dict(state)
        return model.to(task.device).eval()

    task.load_model = load_model
    task.config = preset
    return task, lambda rel: read_slice_mask(store.directory / rel)
