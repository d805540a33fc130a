"""Segmentation masks out per volume, in the source's geometry, and back in.

``project export DIR --format masks --out FOLDER`` writes every labelled pool slice's current
mask, one file per volume:

- a NIfTI volume ``NAME`` -> ``FOLDER/NAME.nii.gz``: the class indices (``uint8``) in the source
  file's array layout ``(x, y, z)`` with its affine and header (sform/qform, zooms, units), so
  a viewer lays the mask over the scan;
- a DICOM series ``NAME`` -> ``FOLDER/NAME.seg.dcm``: a DICOM Segmentation (highdicom, BINARY,
  one segment per foreground class, labelled by its class name, algorithm type MANUAL) that
  references the series' instances, shares its FrameOfReferenceUID, study and patient, and
  holds a frame per segment for every labelled slice (empty ones included, so a slice labelled
  all background is told apart from an unlabelled one);
- a 2D image ``NAME`` -> ``FOLDER/NAME.png`` (class indices);

and ``FOLDER/labelled.json``: the classes and, per volume, its file and labelled slices. A
NIfTI volume's unlabelled slices hold 0 in the file; the manifest says which slices are labels.

``project import DIR FOLDER`` reads such a folder back: with the manifest, the slices it lists;
without one, files named by volume id (``NAME.nii.gz``, ``NAME.nii``, ``NAME.seg.dcm``) label
every slice of a NIfTI volume (as a mask at ``init`` does) and the slices a SEG references.
A NIfTI mask must have the volume's shape and (of a NIfTI volume) its affine, a SEG the series' FrameOfReferenceUID and
instances and segment labels that are class names; every slice then goes through the mask
import's checks and commit (:func:`medactive.project.importer.check_rows`,
:func:`~medactive.project.importer.commit_rows`, all or nothing, one transaction). Region
projects (``--region-size``) are not supported here (their labels are patches).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medactive.errors import ConfigError, DataError
from medactive.project.importer import BadRows, ImportReport, check_rows, commit_rows
from medactive.project.store import ProjectStore, atomic_write_bytes

logger = logging.getLogger(__name__)

MANIFEST = "labelled.json"
SEG_SUFFIX = ".seg.dcm"
_TISSUE = ("85756007", "SCT", "Tissue")  # SNOMED CT, the segmented property category and type


@dataclass
class MaskExport:
    path: Path
    n_volumes: int
    n_slices: int


def _volumes(store: ProjectStore) -> dict[str, dict[str, Any]]:
    return store.get_meta("volumes", {})


def _labelled_slices(store: ProjectStore) -> dict[str, dict[int, str]]:
    """``{volume id: {slice index: mask path}}`` of the current labels of pool slices."""
    from medactive.project.volumes import _volume_of

    labels = store.current_labels("pool")
    excluded = store.excluded_ids()
    out: dict[str, dict[int, str]] = {}
    for sample in store.samples("pool"):
        lab = labels.get(sample.id)
        if lab is None or lab.mask_path is None or sample.id in excluded:
            continue
        vid, _ = _volume_of(store, sample)
        out.setdefault(vid, {})[int(sample.frame)] = lab.mask_path
    return out


def _check_supported(store: ProjectStore) -> None:
    if store.task != "segmentation":
        raise ConfigError("--format masks is for segmentation projects; a classification "
                          "project exports labels as csv or label-studio")
    if store.get_meta("region_size") is not None:
        raise ConfigError("--format masks does not support region projects (--region-size): "
                          "their labels are patches; use --format folder or label-studio")


def export_masks(store: ProjectStore, out: str | Path | None = None) -> MaskExport:
    """Write the labelled slices' masks per volume (see the module doc).

    Raises:
        ConfigError: not a (non-region) segmentation project, no labelled slice, ``out`` not
            empty.
    """
    from medactive.data.segmentation.masks import read_slice_mask

    _check_supported(store)
    out = Path(out) if out is not None else store.directory / "exports" / "masks"
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: folder exists and is not empty; choose another --out")
    labelled = _labelled_slices(store)
    if not labelled:
        raise ConfigError("no labelled slice to export")
    volumes = _volumes(store)
    manifest: dict[str, Any] = {"format": "medactive masks", "classes": store.classes,
                                "volumes": {}}
    n_slices = 0
    for vid in sorted(labelled):
        vol = volumes[vid]
        src = store.images_root / vol["path"]
        s, h, w = (int(v) for v in vol["shape"])
        stack = np.zeros((s, h, w), dtype=np.uint8)
        for k, rel in labelled[vid].items():
            stack[k] = read_slice_mask(store.directory / rel)
        if vol.get("format") == "image":
            from medactive.project.volumes import _png_bytes

            name = f"{vid}.png"
            atomic_write_bytes(out / name, _png_bytes(stack[0]))
        elif src.is_dir():
            name = f"{vid}{SEG_SUFFIX}"
            atomic_write_bytes(out / name, dicom_seg_bytes(src, stack, sorted(labelled[vid]),
                                                           store.classes))
        else:
            name = f"{vid}.nii.gz"
            atomic_write_bytes(out / name, nifti_mask_bytes(src, stack))
        manifest["volumes"][vid] = {"file": name, "slices": sorted(labelled[vid])}
        n_slices += len(labelled[vid])
    atomic_write_bytes(out / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
    return MaskExport(out, len(labelled), n_slices)


# -- NIfTI -------------------------------------------------------------------------------------
def nifti_mask_bytes(source: Path, stack: np.ndarray) -> bytes:
    """``.nii.gz`` bytes of the ``[S, H, W]`` mask ``stack`` in the source's layout ``(x, y, z)``
    with the source's affine and header."""
    import gzip

    import nibabel as nib

    img = nib.load(str(source))
    data = np.transpose(stack, (2, 1, 0))  # [S, H, W] -> (x = W, y = H, z = S)
    shape = tuple(img.shape)
    data = data.reshape(shape)  # a 2D or (x, y, z, 1) source keeps its own array shape
    header = img.header.copy()
    header.set_data_dtype(np.uint8)
    mask = type(img)(data.astype(np.uint8), img.affine, header=header)
    mask.header.set_slope_inter(1, 0)
    mask.header["cal_min"], mask.header["cal_max"] = 0, 0
    return gzip.compress(mask.to_bytes(), mtime=0)


def _read_nifti_mask(file: Path, source: Path | None, shape: tuple[int, int, int]
                     ) -> np.ndarray:
    import nibabel as nib

    from medactive.data.segmentation.nifti import read_nifti

    arr, _ = read_nifti(file, mask=True)
    if tuple(arr.shape) != tuple(shape):
        raise DataError(f"mask shape {tuple(arr.shape)} [S, H, W] does not match the volume's "
                        f"{tuple(shape)}")
    if source is not None and not np.allclose(nib.load(str(source)).affine,
                                              nib.load(str(file)).affine, atol=1e-3):
        raise DataError("the mask's affine differs from the source volume's (a mask of "
                        "another scan, or resampled?)")
    return np.asarray(arr)


# -- DICOM SEG ---------------------------------------------------------------------------------
def _series(folder: Path) -> list:
    """The series' datasets in the project's slice order (position along the normal)."""
    from medactive.data.segmentation.dicom import _scan

    return [ds for _, ds in _scan(folder, pixels=True)[0]]


def dicom_seg_bytes(folder: Path, stack: np.ndarray, slices: list[int], classes: list[str]
                    ) -> bytes:
    """A DICOM SEG (highdicom) of the labelled ``slices`` of ``stack`` ``[S, H, W]`` over the
    series in ``folder``: segment ``c`` is class ``c`` (``classes[c]``), c >= 1."""
    import io

    import highdicom as hd

    from medactive._version import __version__

    series = _series(folder)
    code = hd.sr.CodedConcept(*_TISSUE)
    segments = [hd.seg.SegmentDescription(
        segment_number=c, segment_label=classes[c], segmented_property_category=code,
        segmented_property_type=code,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL) for c in range(1, len(classes))]
    seg = hd.seg.Segmentation(
        source_images=[series[k] for k in slices], pixel_array=stack[slices].astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments, series_instance_uid=hd.UID(), series_number=900,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="medactive",
        manufacturer_model_name="medactive project", software_versions=str(__version__),
        device_serial_number="0", series_description="medactive labels",
        omit_empty_frames=False)
    buf = io.BytesIO()
    seg.save_as(buf)
    return buf.getvalue()


def _read_seg(file: Path, folder: Path, classes: list[str]) -> dict[int, np.ndarray]:
    """``{slice index: [H, W] class mask}`` of the slices a SEG file references."""
    import pydicom

    try:
        seg = pydicom.dcmread(str(file))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for a bad file
        raise DataError(f"cannot read the DICOM file ({type(exc).__name__}: {exc})") from None
    if seg.get("Modality") != "SEG":
        raise DataError(f"not a DICOM SEG (Modality {seg.get('Modality')!r})")
    series = _series(folder)
    if seg.get("FrameOfReferenceUID") != series[0].get("FrameOfReferenceUID"):
        raise DataError(f"FrameOfReferenceUID {seg.get('FrameOfReferenceUID')} is not the "
                        f"series' {series[0].get('FrameOfReferenceUID')}")
    index = {str(ds.SOPInstanceUID): k for k, ds in enumerate(series)}
    lookup = {c: i for i, c in enumerate(classes)}
    segment_class = {}
    for item in seg.SegmentSequence:
        label = str(item.SegmentLabel)
        if label not in lookup:
            raise DataError(f"segment {int(item.SegmentNumber)} {label!r} is not a class of "
                            f"the project (classes: {', '.join(classes)})")
        segment_class[int(item.SegmentNumber)] = lookup[label]
    frames = seg.pixel_array
    frames = frames[None] if frames.ndim == 2 else frames
    h, w = int(series[0].Rows), int(series[0].Columns)
    out: dict[int, np.ndarray] = {}
    for i, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = str(group.DerivationImageSequence[0].SourceImageSequence[0]
                  .ReferencedSOPInstanceUID)
        if uid not in index:
            raise DataError(f"frame {i + 1} references instance {uid}, not one of the series")
        k = index[uid]
        mask = out.setdefault(k, np.zeros((h, w), dtype=np.uint8))
        layer = frames[i] > 0
        mask[layer & (segment_class[number] >= mask)] = segment_class[number]
    return out


# -- import ------------------------------------------------------------------------------------
def is_volume_mask_folder(store: ProjectStore, folder: Path) -> bool:
    """A folder of ``export --format masks`` (its manifest), or of files named by volume
    ids of a segmentation project."""
    if (folder / MANIFEST).is_file():
        return True
    if store.task != "segmentation":
        return False
    volumes = _volumes(store)
    files = [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return bool(files) and all(_volume_id(name, volumes) is not None for name in files)


def _volume_id(name: str, volumes: dict[str, Any]) -> str | None:
    for suffix in (SEG_SUFFIX, ".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            vid = name[: -len(suffix)]
            return vid if vid in volumes and volumes[vid].get("format") != "image" else None
    return None


def import_volume_masks(store: ProjectStore, folder: str | Path, *,
                        annotator: str | None = None, overwrite: bool = False) -> ImportReport:
    """Import a folder of volume masks (see the module doc), all or nothing.

    Raises:
        BadRows: any bad file or slice (numbered by file, in the manifest's or name order).
    """
    _check_supported(store)
    folder = Path(folder)
    volumes = _volumes(store)
    manifest = None
    if (folder / MANIFEST).is_file():
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            entries = [(vid, folder / e["file"], [int(k) for k in e["slices"]])
                       for vid, e in manifest["volumes"].items()]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{folder / MANIFEST}: not a masks manifest ({exc})") from None
    else:
        names = sorted(p.name for p in folder.iterdir()
                       if p.is_file() and not p.name.startswith("."))
        entries = [(_volume_id(n, volumes), folder / n, None) for n in names]
    problems: list[tuple[int, str]] = []
    raw: list[tuple[int, dict[str, str]]] = []
    with tempfile.TemporaryDirectory(prefix="medactive-masks-") as tmp:
        for n, (vid, file, slices) in enumerate(entries, start=1):
            try:
                masks = _read_volume_file(store, vid, file, volumes)
            except DataError as exc:
                problems.append((n, f"{file.name}: {exc}"))
                continue
            wanted = sorted(masks) if slices is None else slices
            for k in wanted:
                if k not in masks:
                    problems.append((n, (f"{file.name}: slice {k} of the manifest is not "
                                         "in the file")))
                    continue
                from medactive.project.volumes import _png_bytes

                png = Path(tmp) / f"{n}-{k}.png"
                png.write_bytes(_png_bytes(masks[k]))
                raw.append((n, {"id": f"{vid}/{k}", "label": str(png)}))
        rows = []
        try:
            from medactive.project.volumes import sample_shape

            rows = check_rows(folder, ["id", "label"], raw, classes=store.classes,
                              sample_splits={s.id: s.split for s in store.samples()},
                              current=store.current_labels(),
                              in_batch={q.sample_id for q in store.queries()},
                              task="segmentation", overwrite=overwrite,
                              mask_shape=lambda sid: sample_shape(store, sid),
                              excluded=store.excluded_ids(), base=Path(tmp), kind="file")
        except BadRows as exc:
            problems += exc.problems
        if problems:
            raise BadRows(folder, sorted(problems), kind="file")
        return commit_rows(store, rows, folder, annotator=annotator, overwrite=overwrite,
                           kind="file")


def _read_volume_file(store: ProjectStore, vid: str | None, file: Path,
                      volumes: dict[str, Any]) -> dict[int, np.ndarray]:
    """``{slice index: [H, W] mask}`` of one volume's mask file, checked against its source."""
    if vid is None or vid not in volumes:
        raise DataError("not named by a volume of the project")
    vol = volumes[vid]
    if vol["split"] != "pool":
        raise DataError(f"{vid!r} is a {vol['split']} volume; only pool slices take labels")
    if not file.is_file():
        raise DataError("file not found")
    src = store.images_root / vol["path"]
    n_classes = len(store.classes)
    if vol.get("format") == "image":
        from medactive.data.segmentation.masks import read_slice_mask

        return {0: read_slice_mask(file)}
    if file.name.lower().endswith(SEG_SUFFIX):
        if not src.is_dir():
            raise DataError(f"a DICOM SEG, but {vid!r} is a NIfTI volume")
        return _read_seg(file, src, store.classes)
    # a NIfTI mask of a DICOM series (the layout `init` reads) has no affine to compare
    arr = _read_nifti_mask(file, None if src.is_dir() else src,
                           tuple(int(v) for v in vol["shape"]))
    if (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or arr.min() < 0
            or arr.max() >= n_classes):
        raise DataError(f"mask values must be integers 0..{n_classes - 1}")
    return {k: arr[k].astype(np.uint8) for k in range(arr.shape[0])}
