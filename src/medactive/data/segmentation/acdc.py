"""ACDC cardiac cine-MRI (Bernard et al., IEEE TMI 2018) in two layouts.

**SSL4MIS h5** (the preprocessed copy in ``../shared/data/acdc``)::

    ROOT/train_slices.list   slice names, e.g. patient099_frame01_slice_15
    ROOT/val.list, test.list volume names, e.g. patient028_frame01
    ROOT/data/slices/NAME.h5 one 2D training slice: image float32 [H, W], label uint8 [H, W]
    ROOT/data/NAME.h5        one 3D val/test volume: image [S, H, W], label [S, H, W]

``frame01`` is end-diastole (ED) and ``frame02`` end-systole (ES) (SSL4MIS renames the ES
frame). The h5 files carry no voxel spacing: pass a spacing CSV
(:func:`~medactive.data.segmentation.base.read_spacing_csv`), else surface distances are in voxels.

**Raw ACDC NIfTI** (the challenge release)::

    ROOT[/training]/patientNNN/Info.cfg                   "ED: 1", "ES: 12", ...
    ROOT[/training]/patientNNN/patientNNN_frameFF.nii.gz  one cardiac phase, (x, y, z)
    ROOT[/training]/patientNNN/patientNNN_frameFF_gt.nii.gz

Slice ids are ``patientNNN/frameFF/k`` (``k`` 0-based along z). The split is, in order of
preference: ``val.list``/``test.list`` at the root naming patients or volumes; the standard
SSL4MIS split of patients 1–100 (Luo et al., 2022, the one the survey follows) when all its
val/test patients are present; else a fixed 70/10/20 split by patient.

Classes: 0 background, 1 RV (right ventricle cavity), 2 MYO (left ventricle myocardium),
3 LV (left ventricle cavity).

References:
    Bernard et al., "Deep Learning Techniques for Automatic MRI Cardiac Multi-structures
    Segmentation and Diagnosis: Is the Problem Solved?", IEEE TMI 37(11), 2018.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from medactive.data.segmentation.base import (
    ACDC_CLASSES,
    SegmentationData,
    SliceRef,
    VolumeRef,
    check_pair,
    natural_key,
    read_list,
    read_spacing_csv,
    split_groups,
)
from medactive.data.segmentation.nifti import nifti_stem, volume_refs
from medactive.errors import DataError

logger = logging.getLogger(__name__)

#: the standard SSL4MIS split of ACDC's 100 training patients (val and test patients)
SSL4MIS_VAL = (2, 19, 28, 30, 39, 45, 78, 82, 85, 87)
SSL4MIS_TEST = (1, 7, 8, 11, 13, 22, 24, 33, 52, 59, 64, 65, 66, 68, 75, 80, 81, 83, 84, 93)

_FRAME_RE = re.compile(r"_frame(\d+)")
_NIFTI_FRAME_RE = re.compile(r"^(patient\d+)_frame(\d+)(_gt)?$")


# ---------------------------------------------------------------- SSL4MIS h5 layout


def is_ssl4mis_h5(path: Path) -> bool:
    """Whether ``path`` has the SSL4MIS layout (reads no file)."""
    slices = path / "data" / "slices"
    return slices.is_dir() and (
        (path / "train_slices.list").is_file() or any(slices.glob("*.h5")))


def _h5_frame_ok(name: str, frames: str) -> bool:
    match = _FRAME_RE.search(name)
    if match is None or frames == "both":
        return True
    return int(match.group(1)) == (1 if frames == "ed" else 2)


def _patient(name: str) -> str:
    match = re.match(r"(patient\d+)", name)
    return match.group(1) if match else name.split("_")[0]


def read_h5(path: Path, *, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(image, label)`` of an SSL4MIS h5 file, checked.

    Raises:
        DataError: unreadable file, missing ``image``/``label`` dataset, wrong number of
            dimensions, mask shape differing from the image, labels outside 0..3.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("image", "label") if k not in f]
            if missing:
                raise DataError(f"{path}: no {' or '.join(repr(m) for m in missing)} dataset "
                                f"(found {sorted(f.keys())})")
            image, label = f["image"][()], f["label"][()]
    except DataError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/RuntimeError for bad files
        raise DataError(f"{path}: cannot read the h5 file ({exc})") from exc
    if np.ndim(image) != ndim:
        raise DataError(f"{path}: image has shape {np.shape(image)}; expected {ndim} dimensions "
                        f"({'[H, W] slice' if ndim == 2 else '[S, H, W] volume'})")
    return check_pair(image, label, len(ACDC_CLASSES), str(path), classes=ACDC_CLASSES)


def load_ssl4mis_h5(path: str | Path, *, frames: str = "ed",
                    spacing_csv: str | Path | None = None) -> SegmentationData:
    """Read ACDC in the SSL4MIS h5 layout.

    Args:
        path: the root (holding ``data/`` and the ``*.list`` files).
        frames: ``"ed"`` (frame01, the survey's protocol: 656 slices, 10 val and 20 test
            volumes on the standard split), ``"es"`` (frame02) or ``"both"``.
        spacing_csv: voxel spacings of the val/test volumes; without it distances are in voxels.

    Raises:
        DataError: a missing list or listed file, a spacing CSV lacking a volume.
    """
    path = Path(path)
    slice_dir = path / "data" / "slices"
    if (path / "train_slices.list").is_file():
        names = read_list(path / "train_slices.list")
    else:
        names = [p.name[:-3] for p in slice_dir.glob("*.h5")]
    names = sorted({n for n in names if _h5_frame_ok(n, frames)}, key=natural_key)
    train = []
    for name in names:
        file = slice_dir / f"{name}.h5"
        if not file.is_file():
            raise DataError(f"{file}: listed in train_slices.list but missing")
        volume = name.split("_slice")[0]
        train.append(SliceRef(name, _patient(name), volume, str(file),
                              lambda file=file: read_h5(file, ndim=2)))
    spacing = read_spacing_csv(spacing_csv) if spacing_csv is not None else None
    splits: dict[str, list[VolumeRef]] = {}
    for split in ("val", "test"):
        list_file = path / f"{split}.list"
        if not list_file.is_file():
            raise DataError(f"{list_file}: missing; the SSL4MIS layout lists the {split} volumes "
                            "there")
        refs = []
        for name in sorted({n for n in read_list(list_file) if _h5_frame_ok(n, frames)},
                           key=natural_key):
            file = path / "data" / f"{name}.h5"
            if not file.is_file():
                raise DataError(f"{file}: listed in {list_file.name} but missing")
            vol_spacing = None
            if spacing is not None:
                vol_spacing = spacing.get(name) or spacing.get(_patient(name))
                if vol_spacing is None:
                    raise DataError(f"{spacing_csv}: no spacing for volume {name!r} (add a row "
                                    f"'{name},z,y,x' or '{_patient(name)},z,y,x')")
            refs.append(VolumeRef(name, _patient(name), str(file), vol_spacing,
                                  lambda file=file: read_h5(file, ndim=3)))
        splits[split] = refs
    if not train:
        raise DataError(f"{slice_dir}: no training slices for frames={frames!r}")
    notes = ["frame01 = end-diastole, frame02 = end-systole (SSL4MIS naming)"]
    if spacing is None:
        notes.append("h5 files carry no voxel spacing and no spacing CSV was given: ASD and "
                     "HD95 are in voxels (each axis, the slice axis included, counts 1), not mm")
    return SegmentationData(
        name="acdc", source=str(path), layout="ssl4mis-h5", classes=ACDC_CLASSES, train=train,
        val=splits["val"], test=splits["test"], frames=frames,
        spacing_source=None if spacing is None else f"csv:{spacing_csv}", notes=notes)


# ---------------------------------------------------------------- raw ACDC NIfTI layout


def _patient_dirs(path: Path) -> list[Path]:
    dirs = [d for d in path.glob("patient*") if d.is_dir()]
    dirs += [d for d in path.glob("*/patient*") if d.is_dir()]
    return sorted(dirs, key=lambda d: natural_key(d.name))


def _frame_files(patient_dir: Path) -> dict[int, tuple[Path, Path]]:
    """``frame -> (image, mask)`` for the frames of a patient folder that have a ``_gt`` mask."""
    images: dict[int, Path] = {}
    masks: dict[int, Path] = {}
    for f in patient_dir.iterdir():
        stem = nifti_stem(f)
        match = _NIFTI_FRAME_RE.match(stem) if stem else None
        if match:
            (masks if match.group(3) else images)[int(match.group(2))] = f
    return {k: (images[k], masks[k]) for k in sorted(images) if k in masks}


def is_acdc_nifti(path: Path) -> bool:
    """Whether ``path`` holds raw ACDC patient folders (lists files, reads none)."""
    return any(_frame_files(d) for d in _patient_dirs(path)[:5])


def read_info_cfg(path: Path) -> dict[str, str]:
    """``key -> value`` of an ACDC ``Info.cfg`` (``ED: 1`` lines)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    info = {}
    for line in lines:
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip().upper()] = value.strip()
    return info


def _ed_es(patient_dir: Path) -> tuple[int, int]:
    cfg = patient_dir / "Info.cfg"
    if not cfg.is_file():
        raise DataError(f"{cfg}: missing, so the ED/ES frames are unknown; add it or use "
                        "frames='both'")
    info = read_info_cfg(cfg)
    try:
        return int(float(info["ED"])), int(float(info["ES"]))
    except (KeyError, ValueError) as exc:
        raise DataError(f"{cfg}: needs 'ED: <frame>' and 'ES: <frame>' lines") from exc


def _split_patients(path: Path, patients: list[str]) -> tuple[set[str], set[str], set[str], str]:
    if (path / "val.list").is_file() or (path / "test.list").is_file():
        named = {}
        for split in ("val", "test"):
            f = path / f"{split}.list"
            if not f.is_file():
                raise DataError(f"{f}: missing; give both val.list and test.list")
            named[split] = {_patient(n) for n in read_list(f)}
        train = set(patients) - named["val"] - named["test"]
        return train, named["val"], named["test"], "split from val.list/test.list"
    numbers = {int(p[len("patient"):]): p for p in patients if p[len("patient"):].isdigit()}
    if all(n in numbers for n in SSL4MIS_VAL + SSL4MIS_TEST):
        val = {numbers[n] for n in SSL4MIS_VAL}
        test = {numbers[n] for n in SSL4MIS_TEST}
        train = {p for n, p in numbers.items() if n <= 100} - val - test
        note = "standard SSL4MIS split of patients 1-100 (70/10/20)"
        if any(n > 100 for n in numbers):
            note += "; patients above 100 (the challenge's test set) are not used"
        return train, val, test, note
    train, val, test = split_groups(patients)
    return train, val, test, "fixed 70/10/20 split by patient (seed 0)"


def load_acdc_nifti(path: str | Path, *, frames: str = "ed") -> SegmentationData:
    """Read the raw ACDC NIfTI release (see the module docstring).

    Args:
        path: the folder holding ``patientNNN`` folders (or ``training/``/``testing/``).
        frames: ``"ed"``, ``"es"`` (from each ``Info.cfg``) or ``"both"`` (every frame with a
            ``_gt`` mask).

    Raises:
        DataError: no patient folder with an image/mask pair, a missing or malformed
            ``Info.cfg``, a missing frame; file errors surface when a volume is read.
    """
    path = Path(path)
    by_patient: dict[str, list[tuple[str, str, Path, Path]]] = {}
    for patient_dir in _patient_dirs(path):
        files = _frame_files(patient_dir)
        if not files:
            continue
        if frames == "both":
            keep = list(files)
        else:
            ed, es = _ed_es(patient_dir)
            frame = ed if frames == "ed" else es
            if frame not in files:
                raise DataError(f"{patient_dir}: Info.cfg names frame {frame} as "
                                f"{frames.upper()} but {patient_dir.name}_frame{frame:02d}"
                                ".nii.gz with its _gt mask is missing")
            keep = [frame]
        patient = patient_dir.name
        by_patient[patient] = [(f"{patient}/frame{k:02d}", patient, *files[k]) for k in keep]
    if not by_patient:
        raise DataError(f"{path}: no patientNNN folder with patientNNN_frameFF.nii.gz and its "
                        "_gt mask")
    train, val, test, note = _split_patients(path, sorted(by_patient, key=natural_key))

    def pairs(members: set[str]):
        return [p for patient in sorted(members & set(by_patient), key=natural_key)
                for p in by_patient[patient]]

    if not pairs(train) or not pairs(val) or not pairs(test):
        raise DataError(f"{path}: the split leaves an empty train, val or test set ({note})")
    train_slices, _ = volume_refs(pairs(train), len(ACDC_CLASSES), ACDC_CLASSES,
                                  slice_id=lambda v, k: f"{v}/{k}")
    _, val_volumes = volume_refs(pairs(val), len(ACDC_CLASSES), ACDC_CLASSES)
    _, test_volumes = volume_refs(pairs(test), len(ACDC_CLASSES), ACDC_CLASSES)
    return SegmentationData(
        name="acdc", source=str(path), layout="acdc-nifti", classes=ACDC_CLASSES,
        train=train_slices, val=val_volumes, test=test_volumes, frames=frames,
        spacing_source="nifti header", notes=[note, "ED/ES frames from each Info.cfg"])
