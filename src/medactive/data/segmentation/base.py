"""Segmentation data: a pool of 2D slices to label and 3D volumes to evaluate on.

Four on-disk layouts are read (see :func:`load_segmentation_data`):

- ``"ssl4mis-h5"`` — ACDC preprocessed as in HiLab-git/SSL4MIS: ``data/slices/*.h5`` 2D training
  slices and ``data/*.h5`` 3D val/test volumes (datasets ``image``/``label``) listed in
  ``train_slices.list``/``val.list``/``test.list`` (:mod:`.acdc`).
- ``"acdc-nifti"`` — the raw ACDC release: ``patientNNN/patientNNN_frameFF.nii.gz`` with
  ``_gt`` masks and ``Info.cfg`` naming the ED/ES frames (:mod:`.acdc`).
- ``"nifti-folder"`` — a folder of NIfTI image/mask pairs (:mod:`.nifti`).
- ``"image-folder"`` — 2D image/mask pairs (PNG, JPEG, TIFF) in ``images/`` + ``masks/``, each a
  one-slice volume (:mod:`.png`).

Whatever the layout, a volume is an array ``[S, H, W]`` (slices first, as SSL4MIS stores it:
NIfTI ``(x, y, z)`` arrays are transposed to ``(z, y, x)``) with a mask of the same shape holding
class indices, and its voxel spacing ``(s_z, s_y, s_x)`` in mm when known. Training slices are
``[H, W]`` images with ``[H, W]`` masks; their ids are stable strings (the h5 file stem, e.g.
``"patient003_frame01_slice_1"``, ``"patient001/frame01/3"`` for NIfTI volumes, or the image
name ``"ISIC_0000000"`` for a 2D image).

Files are read lazily: a :class:`SliceRef` or :class:`VolumeRef` holds a loader, so building the
data only lists files; the task reads each one once.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medactive.errors import DataError

#: ACDC classes; mask values are indices into this tuple
ACDC_CLASSES = ("background", "RV", "MYO", "LV")

#: the ``frames`` choices: end-diastole (survey protocol), end-systole, or both
FRAMES = ("ed", "es", "both")

Spacing = tuple[float, float, float]


@dataclass(frozen=True)
class SliceRef:
    """One 2D training slice of the AL pool.

    Attributes:
        id: stable sample id (e.g. ``"patient003_frame01_slice_1"``).
        group: patient id (e.g. ``"patient003"``).
        volume: id of the volume the slice was cut from (e.g. ``"patient003_frame01"``).
        source: file the slice is read from, for error messages.
        load: ``() -> (image [H, W] float32, mask [H, W] uint8)``.
    """

    id: str
    group: str
    volume: str
    source: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]] = field(repr=False, compare=False)


@dataclass(frozen=True)
class VolumeRef:
    """One 3D evaluation volume.

    Attributes:
        id: volume id (e.g. ``"patient001_frame01"``).
        group: patient id.
        source: file the volume is read from, for error messages.
        spacing: ``(s_z, s_y, s_x)`` voxel size in mm along ``[S, H, W]``, or ``None``.
        load: ``() -> (image [S, H, W] float32, mask [S, H, W] uint8)``.
    """

    id: str
    group: str
    source: str
    spacing: Spacing | None
    load: Callable[[], tuple[np.ndarray, np.ndarray]] = field(repr=False, compare=False)


@dataclass
class SegmentationData:
    """A segmentation dataset: slice pool (train) and val/test volumes.

    Attributes:
        name: short name (``"acdc"`` or the folder name).
        source: the path it was read from.
        layout: ``"ssl4mis-h5"``, ``"acdc-nifti"``, ``"nifti-folder"`` or ``"image-folder"``.
        classes: class names, background first; mask values index into it.
        train: the AL pool, one :class:`SliceRef` per slice, in a stable order.
        val, test: evaluation volumes.
        frames: which cardiac frames were kept (``"ed"``, ``"es"``, ``"both"``; ``"all"`` for a
            generic folder, which has no frames).
        spacing_source: where the val/test spacing comes from (``"nifti header"``,
            ``"csv:<path>"``) or ``None`` when unknown: distances are then in voxels.
        notes: human-readable remarks for run.json (e.g. excluded patients, split rule).
    """

    name: str
    source: str
    layout: str
    classes: tuple[str, ...]
    train: list[SliceRef]
    val: list[VolumeRef]
    test: list[VolumeRef]
    frames: str
    spacing_source: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def distance_unit(self) -> str:
        """``"mm"`` when every val/test volume has a spacing, else ``"voxel"``."""
        known = all(v.spacing is not None for v in (*self.val, *self.test))
        return "mm" if known else "voxel"

    def describe(self) -> dict:
        """JSON-serialisable summary for run.json."""
        return {"name": self.name, "source": self.source, "layout": self.layout,
                "classes": list(self.classes), "frames": self.frames,
                "n_train_slices": len(self.train), "n_train_volumes":
                len({s.volume for s in self.train}), "n_val_volumes": len(self.val),
                "n_test_volumes": len(self.test), "distance_unit": self.distance_unit,
                "spacing_source": self.spacing_source or "unknown: distances in voxels",
                "notes": list(self.notes)}


def check_pair(image: np.ndarray, mask: np.ndarray, n_classes: int, source: str,
               *, classes: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate an image/mask pair read from ``source`` and return ``(float32, uint8)`` arrays.

    Raises:
        DataError: shapes differ, mask values are not integers or lie outside
            ``0..n_classes-1``, or the image has NaN/inf values; the message names ``source``.
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.shape != mask.shape:
        raise DataError(f"{source}: mask shape {mask.shape} differs from image shape "
                        f"{image.shape}")
    if not np.issubdtype(mask.dtype, np.integer):
        if mask.dtype == bool:
            mask = mask.astype(np.uint8)
        else:
            rounded = np.rint(mask)
            if not np.array_equal(rounded, mask):
                raise DataError(f"{source}: mask holds non-integer values (e.g. "
                                f"{mask[rounded != mask].flat[0]!r}); expected class indices")
            mask = rounded
    values = np.unique(mask)
    bad = values[(values < 0) | (values >= n_classes)]
    if bad.size:
        names = f" ({', '.join(classes)})" if classes else ""
        raise DataError(f"{source}: label values {sorted(int(v) for v in bad)} are outside the "
                        f"class set 0..{n_classes - 1}{names}")
    image = image.astype(np.float32, copy=False)
    if not np.all(np.isfinite(image)):
        raise DataError(f"{source}: image contains NaN or infinite values")
    return image, mask.astype(np.uint8)


def natural_key(text: str) -> tuple:
    """Sort key ordering embedded numbers numerically (``slice_2`` before ``slice_10``)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def read_list(path: Path) -> list[str]:
    """Non-empty, stripped lines of a ``*.list`` file, without a trailing ``.h5``."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the list file ({exc})") from exc
    return [line.strip().removesuffix(".h5") for line in lines if line.strip()]


def read_spacing_csv(path: str | Path) -> dict[str, Spacing]:
    """Read voxel spacings for volumes that carry none (the h5 layout).

    The CSV has a header and one row per volume or patient: ``case,z,y,x`` where ``case`` is a
    volume id (``patient001_frame01``) or a patient id (``patient001``, then used for all of
    its frames) and ``z, y, x`` the voxel size in mm along the volume's ``[S, H, W]`` axes (the
    slice spacing first). Column aliases: ``id``/``volume``/``patient`` for ``case``,
    ``spacing_z``/``spacing_y``/``spacing_x`` for ``z``/``y``/``x``.

    Raises:
        DataError: missing file or column, or a value that is not a positive number; the
            message names the file and row.
    """
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the spacing CSV ({exc})") from exc
    if not rows:
        raise DataError(f"{path}: the spacing CSV has no rows")
    header = {k.strip().lower(): k for k in rows[0] if k is not None}
    aliases = {"case": ("case", "id", "volume", "patient"), "z": ("z", "spacing_z"),
               "y": ("y", "spacing_y"), "x": ("x", "spacing_x")}
    cols = {}
    for key, names in aliases.items():
        found = [header[n] for n in names if n in header]
        if not found:
            raise DataError(f"{path}: missing column {key!r} (expected header case,z,y,x)")
        cols[key] = found[0]
    spacing: dict[str, Spacing] = {}
    for row_no, row in enumerate(rows, start=2):
        case = (row[cols["case"]] or "").strip().removesuffix(".h5")
        try:
            values = tuple(float(row[cols[k]]) for k in ("z", "y", "x"))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}, row {row_no}: spacing of {case!r} is not a number "
                            f"({exc})") from exc
        if not case or not all(np.isfinite(v) and v > 0 for v in values):
            raise DataError(f"{path}, row {row_no}: expected a case id and three positive "
                            f"spacings, got {dict(row)}")
        spacing[case] = values  # type: ignore[assignment]
    return spacing


def read_classes(root: Path, mask_paths: Sequence[Path],
                 read_mask: Callable[[Path], np.ndarray], *, integers_only: bool = False,
                 ) -> tuple[tuple[str, ...], str]:
    """Class names of a folder of image/mask pairs, and a note saying where they came from.

    ``root/classes.txt`` (one name a line, background first) if present, else
    ``background, class_1 .. class_K`` from the largest value of the masks (each read with
    ``read_mask``; ``integers_only`` also refuses non-integer values of float masks).

    Raises:
        DataError: an unreadable or too short ``classes.txt``, a negative (or non-integer)
            mask value, or masks that are all background.
    """
    classes_file = root / "classes.txt"
    if classes_file.is_file():
        try:
            names = [n.strip() for n in classes_file.read_text().splitlines() if n.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{classes_file}: cannot read ({exc})") from exc
        if len(names) < 2:
            raise DataError(f"{classes_file}: needs at least two class names (background first)")
        return tuple(names), f"classes from {classes_file.name}"
    max_label = 0
    for mask_path in mask_paths:
        mask = read_mask(mask_path)
        if mask.size:
            if np.min(mask) < 0:
                raise DataError(f"{mask_path}: negative label value {int(np.min(mask))}")
            if (integers_only and not np.issubdtype(mask.dtype, np.integer)
                    and np.any(mask != np.round(mask))):
                raise DataError(f"{mask_path}: mask holds non-integer values; expected class "
                                "indices")
            max_label = max(max_label, int(np.max(mask)))
    if max_label < 1:
        raise DataError(f"{root}: every mask is empty (only background); nothing to segment")
    names = ("background", *(f"class_{k}" for k in range(1, max_label + 1)))
    return names, (f"classes inferred from the largest mask value ({max_label}); add "
                   "classes.txt to name them")


def check_frames(frames: str) -> str:
    frames = str(frames).lower()
    if frames not in FRAMES:
        raise DataError(f"frames={frames!r}: choose one of {', '.join(FRAMES)}")
    return frames


def split_groups(groups: Sequence[str], *, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
                 seed: int = 0) -> tuple[set[str], set[str], set[str]]:
    """Split unique group (patient) ids into train/val/test by ``fractions``.

    The split uses a fixed ``seed`` (not the experiment's), so every AL run on a folder sees the
    same test set. Each split gets at least one group.

    Raises:
        DataError: fewer than three groups.
    """
    unique = sorted(set(groups), key=natural_key)
    if len(unique) < 3:
        raise DataError(f"need at least 3 patients/volumes to split into train/val/test, found "
                        f"{len(unique)}; add val.list and test.list files to choose the split")
    rng = np.random.default_rng(seed)
    order = [unique[i] for i in rng.permutation(len(unique))]
    n_test = max(1, round(fractions[2] * len(unique)))
    n_val = max(1, round(fractions[1] * len(unique)))
    n_val = min(n_val, len(unique) - n_test - 1)
    test = set(order[:n_test])
    val = set(order[n_test:n_test + n_val])
    return set(order[n_test + n_val:]), val, test


def normalise(image: np.ndarray) -> np.ndarray:
    """Min-max normalise ``image`` to ``[0, 1]`` (all zeros for a constant image)."""
    image = image.astype(np.float32, copy=False)
    lo, hi = float(np.min(image)), float(np.max(image))
    if hi <= lo:
        return np.zeros_like(image)
    return (image - lo) / (hi - lo)
