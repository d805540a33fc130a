"""Segmentation projects: NIfTI volumes, DICOM series or 2D images as a pool of 2D slices,
masks per slice.

Layout of the image folder (the arrangements of :mod:`medactive.segmentation.data_nifti` and
:mod:`medactive.segmentation.data_png`, where masks are optional)::

    FOLDER/images/NAME.nii.gz   (or imagesTr/)   FOLDER/NAME.nii.gz
    FOLDER/masks/NAME.nii.gz    (optional)       FOLDER/NAME_mask.nii.gz  (optional)
    FOLDER/images/NAME/*.dcm                     a DICOM series folder as volume NAME (mask:
                                                 masks/NAME.nii.gz, x = column, y = row)
    FOLDER/images/NAME.png      (.jpg, .tif)     a 2D image: one sample NAME (when the folder
    FOLDER/masks/NAME.png       (optional)       holds no NIfTI volume or DICOM series)
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

A 2D image ``NAME`` is a one-slice volume ``[1, H, W]`` (meta ``"format": "image"``) whose one
pool sample is ``NAME`` itself with frame 0 (not ``NAME/0``): the ids ``medactive run`` gives the
same folder, and a mask folder laid out like ``masks/`` imports as it is. Its mask is read by
:func:`~medactive.segmentation.data_png.read_mask_2d` (0/255 read as 0/1); the page shows the
image in its own colours, the model sees it grey.
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


def _png():
    from medactive.segmentation import data_png

    return data_png


def _is_image2d(vol: dict[str, Any]) -> bool:
    return vol.get("format") == "image"


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
    if not volumes and _png().pair_dirs(root)[0] is not None:
        return _discover_images_2d(root)
    if not volumes:
        raise DataError(f"{root}: no NIfTI volumes (.nii.gz, .nii), DICOM series folders "
                        "(images/NAME/) or 2D images (images/NAME.png, .jpg, .tif) found")
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
    return rows, _meta(root, info)


def _meta(root: Path, info: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"volumes": info}
    classes_file = root / "classes.txt"
    if classes_file.is_file():
        meta["classes_file"] = [n.strip() for n in classes_file.read_text().splitlines()
                                if n.strip()]
    return meta


def _image_hw(path: Path) -> tuple[int, int]:
    from medactive.data._images import probe_image

    return probe_image(path)[0]


def _discover_images_2d(root: Path):
    """:func:`discover_segmentation_samples` of a folder of 2D images: pool images are samples
    ``NAME`` with frame 0, val/test images one-slice volumes ``NAME``."""
    png = _png()
    found = png.match_images(root, require_masks=False)
    ids = {sid for sid, _, _ in found}
    split_of = {}
    for split in ("val", "test"):
        f = root / f"{split}.list"
        if f.is_file():
            for name in png.read_id_list(f, ids):
                if name in split_of:
                    raise DataError(f"{f}: {name!r} is also in {split_of[name]}.list")
                split_of[name] = split
    rows, info = [], {}
    for sid, image, mask in found:
        h, w = _image_hw(image)
        split = split_of.get(sid, "pool")
        if split != "pool" and mask is None:
            raise DataError(f"{image}: listed in {split}.list but has no mask; evaluation "
                            "images need masks")
        if mask is not None and _image_hw(mask) != (h, w):
            mh, mw = _image_hw(mask)
            raise DataError(f"{mask}: mask size {mw}x{mh} (WxH) differs from its image "
                            f"{image} ({w}x{h})")
        rel = image.relative_to(root).as_posix()
        info[sid] = {"path": rel, "mask": None if mask is None else mask.relative_to(
            root).as_posix(), "shape": [1, h, w], "split": split, "format": "image"}
        rows.append((sid, rel, 0 if split == "pool" else None, file_sha256(image), split))
    return rows, _meta(root, info)


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
    vid = _vid(sample, volumes)
    return vid, volumes[vid]


def _vid(sample: Sample, volumes: dict[str, Any]) -> str:
    """The volume of a sample: itself (an evaluation volume or a 2D image), else the id
    before the last ``/``."""
    if sample.frame is None or sample.id in volumes:
        return sample.id
    return sample.id.rsplit("/", 1)[0]


def sample_shape(store: ProjectStore, sample_id: str) -> tuple[int, int]:
    """``(H, W)`` of a slice sample: the shape its mask must have."""
    sample = store.sample(sample_id)
    if sample is None or sample.frame is None:
        raise DataError(f"{sample_id!r} is not a slice of the project's pool")
    _, vol = _volume_of(store, sample)
    return int(vol["shape"][1]), int(vol["shape"][2])


def read_volume(path: Path) -> np.ndarray:
    """The normalised ``[S, H, W]`` image of a volume, a NIfTI file, DICOM series folder or 2D
    image ``[1, H, W]`` (grey; the last one read is cached)."""
    key = (str(path), _mtime_key(path))
    if _cache["key"] != key:
        if _png().is_image_file(path):
            _cache["value"] = _png().read_image_2d(path)[None]
        else:
            _cache["value"] = _nifti().read_volume_file(path)[0]
        _cache["key"] = key
    return _cache["value"]


def render_slice(store: ProjectStore, sample: Sample) -> np.ndarray:
    """A slice as ``uint8`` ``[H, W]`` (volume min-max scaled; the page applies a window); a 2D
    image as stored, ``[H, W]`` grey or ``[H, W, 3]`` RGB (the annotator sees its colours)."""
    if sample.frame is None:
        raise DataError(f"{sample.id!r} is an evaluation volume, not a slice")
    path = store.images_root / sample.path
    if _png().is_image_file(path):
        from medactive.data._images import GRAYSCALE_MODES, probe_image, read_image

        channels = 1 if probe_image(path)[1] in GRAYSCALE_MODES else 3
        arr = read_image(path, channels=channels)
        return arr[..., 0] if channels == 1 else arr
    volume = read_volume(path)
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
        if _is_image2d(vol):
            mask = _png().read_mask_2d(root / vol["mask"], n_classes=len(meta["classes"]))
            _check_slice_mask(mask, tuple(vol["shape"][1:]), len(meta["classes"]),
                              str(root / vol["mask"]))
            out.append((vid, _store_png(store, mask)))
            continue
        mask, _ = _nifti().read_nifti(root / vol["mask"], mask=True)
        for k in range(mask.shape[0]):
            _check_slice_mask(mask[k], tuple(vol["shape"][1:]), len(meta["classes"]),
                              f"{root / vol['mask']} slice {k}")
            out.append((f"{vid}/{k}", _store_png(store, mask[k])))
    return out


def export_slice(store: ProjectStore, sample: Sample, out: Path) -> str:
    """Write slice ``sample`` as ``images/<id>.nii.gz`` and ``.png`` and an empty mask template
    ``masks/<id>.nii.gz`` under ``out``; returns the NIfTI image's relative path. A 2D image is
    copied as it is (``images/<id>.<ext>``) with a PNG template ``masks/<id>.png``."""
    _, vol = _volume_of(store, sample)
    if _is_image2d(vol):
        src = store.images_root / sample.path
        rel = f"images/{sample.id}{src.suffix.lower()}"
        atomic_write_bytes(out / rel, src.read_bytes())
        atomic_write_bytes(out / f"masks/{sample.id}.png",
                           _png_bytes(np.zeros(vol["shape"][1:], dtype=np.uint8)))
        return rel
    import nibabel as nib

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
        vid = _vid(s, volumes)
        shape = tuple(volumes[vid]["shape"][1:])
        train.append(SliceRef(s.id, vid, vid, str(root / s.path), slice_loader(s, shape)))
    evals: dict[str, list] = {"val": [], "test": []}
    for vid, vol in volumes.items():
        if vol["split"] == "pool":
            continue
        image_path, mask_path = root / vol["path"], root / vol["mask"]
        if _is_image2d(vol):
            _, refs = _png().image_refs([(vid, image_path, mask_path)], len(classes), classes,
                                        slices=False)
            evals[vol["split"]] += refs
            continue

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
    images_2d = all(_is_image2d(v) for v in volumes.values())
    data = SegmentationData(name=store.directory.name, source=str(root), layout="project",
                            classes=classes, train=train, val=evals["val"], test=evals["test"],
                            frames="all", spacing_source=None if images_2d else "nifti header")
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
