"""Segmentation projects: NIfTI volumes, DICOM series or 2D images as a pool of 2D slices,
masks per slice.

Layout of the image folder (the arrangements of :mod:`medactive.data.segmentation.nifti` and
:mod:`medactive.data.segmentation.png`, where masks are optional)::

    FOLDER/images/NAME.nii.gz   (or imagesTr/)   FOLDER/NAME.nii.gz
    FOLDER/masks/NAME.nii.gz    (optional)       FOLDER/NAME_mask.nii.gz  (optional)
    FOLDER/images/NAME/*.dcm                     a DICOM series folder as volume NAME (mask:
                                                 masks/NAME.nii.gz, x = column, y = row)
    FOLDER/images/NAME.png      (.jpg, .tif)     a 2D image: one sample NAME (when the folder
    FOLDER/masks/NAME.png       (optional)       holds no NIfTI volume or DICOM series)
    FOLDER/val.list, FOLDER/test.list            volumes (one NAME a line) for evaluation
    FOLDER/classes.txt                           class names, background first (or --classes)

A volume is read as ``[S, H, W]`` (NIfTI ``(x, y, z)`` transposed, as in
:func:`~medactive.data.segmentation.nifti.read_nifti`; DICOM slices sorted by position with
rows as ``H``, as in :func:`~medactive.data.segmentation.dicom.read_dicom_series`); slice ``k``
of volume ``NAME`` is the sample ``NAME/k`` with a ``[H, W]`` mask. Volumes named in
``val.list``/``test.list`` must have masks: they are evaluated in 3D and never queried. A pool
volume that already has a mask gives its slices initial labels. Masks of slices (imported,
uploaded, initial) are kept inside the project as ``masks/<content hash>.png`` or the uploaded
NIfTI, so a label never changes behind the database's back.

A 2D image ``NAME`` is a one-slice volume ``[1, H, W]`` (meta ``"format": "image"``) whose one
pool sample is ``NAME`` itself with frame 0 (not ``NAME/0``): the ids ``medactive run`` gives the
same folder, and a mask folder laid out like ``masks/`` imports as it is. Its mask is read by
:func:`~medactive.data.segmentation.png.read_mask_2d` (0/255 read as 0/1); the page shows the
image in its own colours, the model sees it grey.

Region projects (``init --region-size P``, survey §4.3.1; details in
:mod:`medactive.project.regions`): the query unit is a patch of a slice *at its original
resolution*. Each pool slice ``H × W`` is tiled row-major into ``P × P`` patches (the last row
and column narrower when ``P`` does not divide the side), and each patch is a pool sample
``"<slice id>@<row>,<col>"`` (pixel offsets) with the slice's path, frame and hash; val/test
volumes stay whole. A patch's label is a ``[h, w]`` mask of the patch (``masks/<hash>.png``): an
upload or imported file may be the patch or the whole slice, of which only the patch is kept.
Masks present at init, and whole-slice masks imported under a slice id, label every patch of
their slices (fully labelled slices). Training resizes each slice's original-size partial map
(unlabelled = ignore) to the network size with nearest neighbour and uses the partial loss;
queries resize the per-pixel scores to the original size and reduce them per patch.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from medactive.data.segmentation.masks import read_slice_mask
from medactive.errors import ConfigError, DataError
from medactive.project.store import ProjectStore, Sample, atomic_write_bytes, file_sha256

logger = logging.getLogger(__name__)

_cache: dict[str, Any] = {"key": None, "value": None}


def _nifti():
    from medactive.data.segmentation import nifti

    return nifti


def _png():
    from medactive.data.segmentation import png

    return png


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


def discover_segmentation_samples(root: Path, *, region_size: int | None = None):
    """Samples rows and meta of a segmentation project over ``root`` (see module docstring).

    Args:
        root: the image folder.
        region_size: ``P``: the pool samples are the ``P × P`` patches of the slices.

    Returns:
        ``(rows, meta)``: ``(id, path, frame, sha256, split)`` rows and the meta entries
        ``volumes`` (``{volume_id: {"path", "mask", "shape", "split"}}``) and, when
        ``classes.txt`` exists, ``classes_file``.
    """
    rows, meta = _discover_slices(root)
    if region_size is None:
        return rows, meta
    from medactive.project.regions import expand_rows

    volumes = meta["volumes"]

    def shape(sid: str) -> tuple[int, int]:
        vol = volumes[sid if sid in volumes else sid.rsplit("/", 1)[0]]
        return int(vol["shape"][1]), int(vol["shape"][2])

    return expand_rows(rows, shape, region_size), meta


def _discover_slices(root: Path):
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
    from medactive.data.images import probe_image

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
    from medactive.data.segmentation.dicom import dicom_files

    digest = hashlib.sha256()
    for f in sorted(dicom_files(path), key=lambda f: f.name):
        digest.update(f"{f.name}\0{file_sha256(f)}\n".encode())
    return digest.hexdigest()


def _mtime_key(path: Path) -> tuple:
    """Changes when a file (or a DICOM folder's slice file) is rewritten, added or removed."""
    if not path.is_dir():
        return (os.stat(path).st_mtime_ns,)
    from medactive.data.segmentation.dicom import dicom_files

    return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in dicom_files(path))


def _volume_of(store: ProjectStore, sample: Sample) -> tuple[str, dict]:
    volumes = store.get_meta("volumes", {})
    vid = _vid(sample, volumes, region=region_size(store) is not None)
    return vid, volumes[vid]


def _vid(sample: Sample, volumes: dict[str, Any], *, region: bool = False) -> str:
    """The volume of a sample: itself (an evaluation volume or a 2D image), else the id
    before the last ``/`` (of a patch sample of a region project: of its slice id)."""
    sid = sample.id
    if region and sample.frame is not None and sid not in volumes:
        sid = slice_of(sid)
    if sample.frame is None or sid in volumes:
        return sid
    return sid.rsplit("/", 1)[0]


def region_size(store: ProjectStore) -> int | None:
    """The patch side ``P`` of a region project, else None."""
    value = store.get_meta("region_size")
    return None if value is None else int(value)


def slice_of(sample_id: str) -> str:
    """The slice id of a patch sample id."""
    from medactive.project.regions import split_patch_id

    return split_patch_id(sample_id)[0]


def slice_shape(store: ProjectStore, sample_id: str) -> tuple[int, int]:
    """``(H, W)`` of the slice of a pool sample (a slice, or a patch of a region project)."""
    sample = store.sample(sample_id)
    if sample is None or sample.frame is None:
        raise DataError(f"{sample_id!r} is not a slice of the project's pool")
    _, vol = _volume_of(store, sample)
    return int(vol["shape"][1]), int(vol["shape"][2])


def sample_box(store: ProjectStore, sample_id: str) -> tuple[int, int, int, int] | None:
    """``(row, col, h, w)`` of a patch sample in its slice; None outside region projects."""
    patch = region_size(store)
    if patch is None:
        return None
    from medactive.project.regions import patch_box

    return patch_box(sample_id, slice_shape(store, sample_id), patch)


def sample_shape(store: ProjectStore, sample_id: str) -> tuple[int, int]:
    """The shape a sample's stored mask has: ``(H, W)`` of a slice, ``(h, w)`` of a patch."""
    box = sample_box(store, sample_id)
    if box is not None:
        return box[2], box[3]
    return slice_shape(store, sample_id)


def mask_shapes(store: ProjectStore, sample_id: str) -> list[tuple[int, int]]:
    """Shapes a mask file of a sample may have: the slice's; for a patch, the patch's or its
    slice's (of which only the patch is kept)."""
    full = slice_shape(store, sample_id)
    box = sample_box(store, sample_id)
    if box is None or (box[2], box[3]) == full:
        return [full]
    return [(box[2], box[3]), full]


def patch_mask(store: ProjectStore, sample_id: str, arr: np.ndarray, where: str) -> np.ndarray:
    """The stored label of patch ``sample_id`` from a mask of the patch or of its slice,
    checked (shape, class values; errors name ``where``)."""
    from medactive.tasks.segmentation.regions import crop_patch_mask

    box = sample_box(store, sample_id)
    if box is None:
        raise DataError(f"{sample_id!r} is not a patch of a region project")
    return crop_patch_mask(arr, box, slice_shape(store, sample_id), len(store.classes), where)


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
    image as stored, ``[H, W]`` grey or ``[H, W, 3]`` RGB (the annotator sees its colours). A
    patch sample renders its whole slice (the page outlines the patch)."""
    if sample.frame is None:
        raise DataError(f"{sample.id!r} is an evaluation volume, not a slice")
    path = store.images_root / sample.path
    if _png().is_image_file(path):
        from medactive.data.images import GRAYSCALE_MODES, probe_image, read_image

        channels = 1 if probe_image(path)[1] in GRAYSCALE_MODES else 3
        arr = read_image(path, channels=channels)
        return arr[..., 0] if channels == 1 else arr
    volume = read_volume(path)
    return np.round(np.clip(volume[int(sample.frame)], 0, 1) * 255).astype(np.uint8)


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
    rel, data = mask_png(mask)
    if not (store.directory / rel).is_file():
        atomic_write_bytes(store.directory / rel, data)
    return rel


def save_uploaded_mask(store: ProjectStore, sample: Sample, data: bytes, suffix: str) -> str:
    """Check an uploaded mask (shape, values) and keep it as a PNG in the project."""
    return _store_png(store, check_uploaded_mask(store, sample, data, suffix))


def check_uploaded_mask(store: ProjectStore, sample: Sample, data: bytes,
                        suffix: str) -> np.ndarray:
    """The ``[H, W]`` label of ``sample`` in an uploaded mask file, checked (shape, values; a
    region project's patch or its whole slice), not stored."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            arr = read_slice_mask(path)
        except DataError as exc:
            raise DataError(f"uploaded mask for {sample.id!r}: {exc}".replace(str(path), "file"))
    return check_mask_array(store, sample, arr, f"uploaded mask for {sample.id!r}")


def check_mask_array(store: ProjectStore, sample: Sample, arr: np.ndarray,
                     where: str) -> np.ndarray:
    """The ``[H, W]`` label of ``sample`` in a mask array read from a file the page or the CLI
    was handed (``project adjudicate --mask``), checked (shape, values; a region project's
    patch or its whole slice; errors name ``where``), not stored."""
    if region_size(store) is not None:
        return patch_mask(store, sample.id, arr, where)
    _check_slice_mask(arr, sample_shape(store, sample.id), len(store.classes), where)
    return arr


def mask_png(mask: np.ndarray) -> tuple[str, bytes]:
    """``(masks/<hash>.png, PNG bytes)`` of a mask, the name :func:`store_png` gives it."""
    data = _png_bytes(mask)
    return f"masks/{hashlib.sha256(data).hexdigest()[:24]}.png", data


def store_png(store: ProjectStore, mask: np.ndarray) -> str:
    """Keep ``mask`` as ``masks/<content hash>.png`` in the project (atomic); its path."""
    return _store_png(store, mask)


def initial_mask_labels(store: ProjectStore, meta: dict[str, Any]) -> list[tuple[str, str]]:
    """Write the masks of pool volumes that have one as per-slice PNGs; ``(id, mask_path)``.
    In a region project (``meta["region_size"]``), one PNG per patch of each slice."""
    slices = _initial_slice_masks(store, meta)
    patch = meta.get("region_size")
    if patch is None:
        return [(sid, _store_png(store, mask)) for sid, mask in slices]
    from medactive.project.regions import patch_boxes, patch_id

    out = []
    for sid, mask in slices:
        for r, c, h, w in patch_boxes(*mask.shape, int(patch)):
            out.append((patch_id(sid, r, c), _store_png(store, mask[r:r + h, c:c + w])))
    return out


def _initial_slice_masks(store: ProjectStore, meta: dict[str, Any]
                         ) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(slice id, [H, W] mask)`` of the pool volumes that have a mask, checked (one
    volume in memory at a time)."""
    root = Path(meta["images_root"])
    for vid, vol in meta["volumes"].items():
        if vol["split"] != "pool" or not vol["mask"]:
            continue
        if _is_image2d(vol):
            mask = _png().read_mask_2d(root / vol["mask"], n_classes=len(meta["classes"]))
            _check_slice_mask(mask, tuple(vol["shape"][1:]), len(meta["classes"]),
                              str(root / vol["mask"]))
            yield vid, mask
            continue
        mask, _ = _nifti().read_nifti(root / vol["mask"], mask=True)
        for k in range(mask.shape[0]):
            _check_slice_mask(mask[k], tuple(vol["shape"][1:]), len(meta["classes"]),
                              f"{root / vol['mask']} slice {k}")
            yield f"{vid}/{k}", mask[k]


def export_slice(store: ProjectStore, sample: Sample, out: Path) -> str:
    """Write slice ``sample`` as ``images/<id>.nii.gz`` and ``.png`` and an empty mask template
    ``masks/<id>.nii.gz`` under ``out``; returns the NIfTI image's relative path. A 2D image is
    copied as it is (``images/<id>.<ext>``) with a PNG template ``masks/<id>.png``.

    A patch of a region project writes its slice's image (named by the slice id, once per
    slice) and a PNG template ``masks/<patch id>.png`` of the patch's size."""
    box = sample_box(store, sample.id)
    if box is None:
        return _export_image(store, sample, out, sample.id, template=True)
    rel = _export_image(store, sample, out, slice_of(sample.id), template=False)
    atomic_write_bytes(out / f"masks/{sample.id}.png",
                       _png_bytes(np.zeros((box[2], box[3]), dtype=np.uint8)))
    return rel


def _export_image(store: ProjectStore, sample: Sample, out: Path, name: str, *,
                  template: bool) -> str:
    """:func:`export_slice` of the slice of ``sample`` under ``name`` (images already written
    by this export are kept)."""
    _, vol = _volume_of(store, sample)
    if _is_image2d(vol):
        src = store.images_root / sample.path
        rel = f"images/{name}{src.suffix.lower()}"
        if not (out / rel).is_file():
            atomic_write_bytes(out / rel, src.read_bytes())
        if template:
            atomic_write_bytes(out / f"masks/{name}.png",
                               _png_bytes(np.zeros(vol["shape"][1:], dtype=np.uint8)))
        return rel
    import nibabel as nib

    rel = f"images/{name}.nii.gz"
    if (out / rel).is_file() and not template:
        return rel
    volume = read_volume(store.images_root / sample.path)
    image = volume[int(sample.frame)]
    h, w = image.shape

    def nii_bytes(arr_hw: np.ndarray, dtype) -> bytes:
        img = nib.Nifti1Image(np.ascontiguousarray(arr_hw.T[:, :, None]).astype(dtype),
                              np.eye(4))
        return _gz(img)

    atomic_write_bytes(out / rel, nii_bytes(image, np.float32))
    atomic_write_bytes(out / f"images/{name}.png", _png_bytes(
        np.round(np.clip(image, 0, 1) * 255)))
    if template:
        atomic_write_bytes(out / f"masks/{name}.nii.gz", nii_bytes(np.zeros((h, w)), np.uint8))
    return rel


def _gz(img) -> bytes:
    import gzip

    return gzip.compress(img.to_bytes(), mtime=0)


def build_segmentation_project_task(store: ProjectStore, *, device: str, progress: bool):
    """The :class:`~medactive.tasks.segmentation.task.SegmentationTask` of the project (of a region
    project: a :class:`~medactive.tasks.segmentation.regions.RegionSegmentationTask` over it whose
    pool is the patches in the original frame) and the function that reads a stored mask label."""
    from medactive.data.segmentation.base import SegmentationData, SliceRef, VolumeRef
    from medactive.tasks.segmentation.task import SegmentationTask

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

    patch = meta.get("region_size")
    train, slice_shapes = [], []
    slice_index: dict[str, int] = {}
    patch_slices = []
    for s in pool:
        vid = _vid(s, volumes, region=patch is not None)
        shape = tuple(volumes[vid]["shape"][1:])
        sid = s.id if patch is None else slice_of(s.id)
        if sid not in slice_index:
            slice_index[sid] = len(train)
            train.append(SliceRef(sid, vid, vid, str(root / s.path), slice_loader(s, shape)))
            slice_shapes.append(shape)
        patch_slices.append(slice_index[sid])
    evals: dict[str, list] = {"val": [], "test": []}
    excluded = store.excluded_ids()
    for vid, vol in volumes.items():
        if vol["split"] == "pool" or vid in excluded:
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
    from medactive.tasks.segmentation.presets import get_preset

    preset = get_preset(meta.get("preset") or "cpu", iterations=meta.get("epochs"),
                        **dict(meta.get("train_options") or {}))  # init: learning_loss only
    # mean teacher (project init --semi-supervised): every pool slice not labelled
    task = SegmentationTask(data, preset, device=device, seed=int(meta.get("seed", 0)),
                            progress=progress, semi_supervised=meta.get("semi_supervised"),
                            semi_options=meta.get("semi_options"))

    def load_model(state):
        from medactive.tasks.learning_loss import attach_from_state

        model = task.new_model(0)
        attach_from_state(model, state)  # a model trained with --learning-loss
        model.load_state_dict(state)
        return model.to(task.device).eval()

    task.load_model = load_model
    task.config = preset
    load = lambda rel: read_slice_mask(store.directory / rel)
    if patch is None:
        return task, load
    from medactive.project.regions import original_pool
    from medactive.tasks.segmentation.regions import RegionSegmentationTask

    regions = original_pool([s.id for s in pool], patch_slices, slice_shapes, int(patch),
                            int(preset.image_size))
    return RegionSegmentationTask(task, pool=regions), load
