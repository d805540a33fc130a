"""ISIC 2020 dermoscopy (Rotemberg et al., 2021), benign vs malignant, split 6:1:3 by patient.

Layout (the ISIC challenge download; the Kaggle SIIM-ISIC copy's ``jpeg/train`` also works)::

    root/
      ISIC_2020_Training_GroundTruth.csv    image_name,patient_id,...,target  (33,126 rows)
      train/ISIC_0015719.jpg ...            or ISIC_2020_Training_JPEG/train/, jpeg/train/

``ISIC_2020_Training_GroundTruth_v2.csv`` is accepted too. ``target`` is 0 (benign) or 1
(malignant, 584 images). The survey splits 6:1:3 (train/val/test) but its released split puts
1,846 patients in both train and test; here the split is by ``patient_id``, seeded, with patients
who have a malignant lesion spread over all three splits. Sample ids are the ``image_name``s;
within a split samples are sorted by id.

References:
    Rotemberg et al., "A patient-centric dataset of images and metadata for identifying
    melanomas using clinical context", Scientific Data 8, 34 (2021).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medactive._random import derive_seed
from medactive.data.images import check_image_size, lazy_images
from medactive.data.pool import Dataset, Split
from medactive.data.splits import split_indices
from medactive.errors import DataError

logger = logging.getLogger(__name__)

CSV_NAMES = ("ISIC_2020_Training_GroundTruth.csv", "ISIC_2020_Training_GroundTruth_v2.csv")
IMAGE_DIRS = ("train", "ISIC_2020_Training_JPEG/train", "ISIC_2020_Training_JPEG",
              "jpeg/train", ".")
ISIC_CLASSES = ("benign", "malignant")
DEFAULT_SIZE = 224


def find_isic_csv(path: str | Path) -> Path | None:
    """The ground-truth CSV in folder ``path`` (or ``path`` itself if it is one), else None."""
    path = Path(path)
    if path.is_file() and path.name in CSV_NAMES:
        return path
    return next((path / n for n in CSV_NAMES if (path / n).is_file()), None)


def load_isic2020(path: str | Path, *, image_size: int | tuple[int, int] | None = None,
                  seed: int = 0, fractions: Sequence[float] = (0.6, 0.1, 0.3)) -> Dataset:
    """Load ISIC 2020 with lazily read RGB images and a patient-level train/val/test split.

    Args:
        path: the folder holding the ground-truth CSV and the JPEG folder (or the CSV itself).
        image_size: resize images to this (int = square); default 224 (the images vary in size).
        seed: seed of the patient-level split.
        fractions: train/val/test fractions of the images (survey: 6:1:3).

    Raises:
        DataError: missing CSV, columns or JPEG file, empty patient id, target not 0/1,
            duplicate image name; messages name the CSV line. A corrupt JPEG raises when read.

    Example:
        >>> ds = load_isic2020("data/isic2020", image_size=224, seed=0)  # doctest: +SKIP
        >>> ds.classes, len(set(ds.train.groups) & set(ds.test.groups))  # doctest: +SKIP
        (['benign', 'malignant'], 0)
    """
    csv_path = find_isic_csv(path)
    if csv_path is None:
        raise DataError(f"{path}: no {CSV_NAMES[0]} found")
    root = csv_path.parent
    names, patients, targets, lines = _read_csv(csv_path)
    image_dir = _find_image_dir(root, names[0])
    order = np.argsort(names, kind="stable")
    names, patients, targets, lines = names[order], patients[order], targets[order], lines[order]
    paths = [image_dir / f"{n}.jpg" for n in names]
    for p, line in zip(paths, lines):
        if not p.is_file():
            raise DataError(f"{csv_path} line {line}: image file {p} not found")
    size = check_image_size(image_size if image_size is not None else DEFAULT_SIZE)
    parts = split_indices(targets, fractions, groups=patients,
                          random_state=derive_seed(seed, "split"))
    splits = {}
    for split_name, idx in zip(("train", "val", "test"), parts):
        if idx.size == 0:
            raise DataError(f"{csv_path}: too few patients for a {split_name} split "
                            f"({np.unique(patients).size} patients)")
        splits[split_name] = Split(names[idx], lazy_images([paths[i] for i in idx], channels=3,
                                                           size=size),
                                   targets[idx], patients[idx])
    dataset = Dataset(name="isic2020", classes=list(ISIC_CLASSES), **splits, in_channels=3,
                      source=str(root), info={"image_dir": str(image_dir),
                                              "image_size": list(size)})
    logger.info("ISIC 2020: %s images (%s malignant) in train/val/test",
                [len(s) for s in splits.values()],
                [int(s.labels.sum()) for s in splits.values()])
    return dataset


def _read_csv(csv_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(image_names, patient_ids, targets, line numbers)`` in file order."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            missing = [c for c in ("image_name", "patient_id", "target") if c not in header]
            if missing:
                raise DataError(f"{csv_path}: missing column(s) {missing}; found {header}")
            names, patients, targets, line_nums, first_line = [], [], [], [], {}
            for row in reader:
                line = reader.line_num
                name = (row["image_name"] or "").strip()
                patient = (row["patient_id"] or "").strip()
                target = (row["target"] or "").strip()
                if not name:
                    raise DataError(f"{csv_path} line {line}: empty image_name")
                if name in first_line:
                    raise DataError(f"{csv_path} line {line}: duplicate image_name {name!r} "
                                    f"(first on line {first_line[name]})")
                first_line[name] = line
                if not patient:
                    raise DataError(f"{csv_path} line {line}: empty patient_id for {name}")
                if target not in ("0", "1"):
                    raise DataError(f"{csv_path} line {line}: target {target!r} of {name} is "
                                    "not 0 (benign) or 1 (malignant)")
                names.append(name)
                patients.append(patient)
                targets.append(int(target))
                line_nums.append(line)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: cannot read the CSV ({exc})") from exc
    if not names:
        raise DataError(f"{csv_path}: no images listed")
    return (np.array(names), np.array(patients), np.array(targets, dtype=np.int64),
            np.array(line_nums))


def _find_image_dir(root: Path, first_name: str) -> Path:
    """The first of the known JPEG folders that holds ``<first_name>.jpg``."""
    for rel in IMAGE_DIRS:
        if (root / rel / f"{first_name}.jpg").is_file():
            return (root / rel) if rel != "." else root
    tried = ", ".join(str(root / d) for d in IMAGE_DIRS)
    raise DataError(f"{root}: {first_name}.jpg not found in any of {tried}; unpack "
                    "ISIC_2020_Training_JPEG.zip there")
