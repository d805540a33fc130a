"""NCT-CRC-HE-100K colorectal histology patches (Kather et al., 2019), as in survey §6.1.

Layout (as distributed on Zenodo, record 1214456)::

    root/
      NCT-CRC-HE-100K/{ADI,BACK,DEB,LYM,MUC,MUS,NORM,STR,TUM}/*.tif   100,000 patches, 224x224
      CRC-VAL-HE-7K/{ADI,...,TUM}/*.tif                                 7,180 patches (test)

NCT-CRC-HE-100K is split 9:1 into train (the AL pool) and val, stratified by class and seeded;
CRC-VAL-HE-7K, from 50 other patients, is the test set. ``NCT-CRC-HE-100K-NONORM`` (without
Macenko colour normalisation) is accepted in place of ``NCT-CRC-HE-100K``. Sample ids are
``<CLASS>/<file stem>`` (e.g. ``ADI/ADI-AAAFLCLY``); within a split samples are sorted by id.

References:
    Kather et al., "Predicting survival from colorectal cancer histology slides using deep
    learning: A retrospective multicenter study", PLOS Medicine 16(1), 2019.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from medactive._random import derive_seed
from medactive.data.images import IMAGE_EXTENSIONS, check_image_size, lazy_images
from medactive.data.pool import Dataset, Split
from medactive.data.splits import split_indices
from medactive.errors import DataError

logger = logging.getLogger(__name__)

NCT_CLASSES = ("ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM")
TRAIN_DIRS = ("NCT-CRC-HE-100K", "NCT-CRC-HE-100K-NONORM")
TEST_DIR = "CRC-VAL-HE-7K"
NATIVE_SIZE = 224


def find_nct_root(path: str | Path) -> Path | None:
    """The folder holding ``NCT-CRC-HE-100K/`` if ``path`` is it or that subfolder, else None."""
    path = Path(path)
    if not path.is_dir():
        return None
    if any((path / d).is_dir() for d in TRAIN_DIRS):
        return path
    if path.name in TRAIN_DIRS:
        return path.parent
    return None


def load_nct_crc_he(path: str | Path, *, image_size: int | tuple[int, int] | None = None,
                    seed: int = 0, val_fraction: float = 0.1) -> Dataset:
    """Load NCT-CRC-HE-100K (train/val) and CRC-VAL-HE-7K (test) with lazily read RGB images.

    Args:
        path: the folder holding ``NCT-CRC-HE-100K/`` and ``CRC-VAL-HE-7K/`` (or the
            ``NCT-CRC-HE-100K`` folder itself).
        image_size: resize patches to this (int = square); default 224, the native size.
        seed: seed of the stratified train/val split.
        val_fraction: share of NCT-CRC-HE-100K held out for validation (survey: 0.1).

    Raises:
        DataError: a missing folder or class folder, an unknown class folder, a class with no
            images. A corrupt patch raises when read, naming the file.

    Example:
        >>> ds = load_nct_crc_he("data/nct", image_size=64, seed=0)  # doctest: +SKIP
        >>> len(ds.train), len(ds.val), len(ds.test), ds.classes[0]  # doctest: +SKIP
        (90000, 10000, 7180, 'ADI')
    """
    root = find_nct_root(path)
    if root is None:
        raise DataError(f"{path}: no NCT-CRC-HE-100K folder found")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    train_dir = next(root / d for d in TRAIN_DIRS if (root / d).is_dir())
    test_dir = root / TEST_DIR
    if not test_dir.is_dir():
        raise DataError(f"{test_dir}: not found; CRC-VAL-HE-7K is the test set of NCT-CRC-HE-100K "
                        "(place it beside the NCT-CRC-HE-100K folder)")
    size = check_image_size(image_size if image_size is not None else NATIVE_SIZE)

    ids, paths, labels = _scan(train_dir)
    train_idx, val_idx = split_indices(labels, (1.0 - val_fraction, val_fraction),
                                       random_state=derive_seed(seed, "split"))
    test_ids, test_paths, test_labels = _scan(test_dir)

    def make(idx_ids, idx_paths, idx_labels) -> Split:
        return Split(idx_ids, lazy_images(idx_paths, channels=3, size=size), idx_labels)

    dataset = Dataset(
        name="nct-crc-he-100k", classes=list(NCT_CLASSES),
        train=make(ids[train_idx], [paths[i] for i in train_idx], labels[train_idx]),
        val=make(ids[val_idx], [paths[i] for i in val_idx], labels[val_idx]),
        test=make(test_ids, test_paths, test_labels),
        in_channels=3, source=str(root),
        info={"train_dir": train_dir.name, "image_size": list(size)})
    logger.info("NCT-CRC-HE-100K: %d train, %d val, %d test patches at %dx%d", len(dataset.train),
                len(dataset.val), len(dataset.test), *size)
    return dataset


def _scan(folder: Path) -> tuple[np.ndarray, list[Path], np.ndarray]:
    """``(ids, paths, labels)`` of the patches in ``folder/<CLASS>/``, sorted by id."""
    class_dirs = {e.name for e in os.scandir(folder)
                  if e.is_dir() and not e.name.startswith((".", "_"))}
    unknown = sorted(class_dirs - set(NCT_CLASSES))
    if unknown:
        raise DataError(f"{folder}: unknown class folder(s) {unknown}; expected "
                        f"{list(NCT_CLASSES)}")
    entries: list[tuple[str, Path, int]] = []
    for label, name in enumerate(NCT_CLASSES):
        class_dir = folder / name
        if not class_dir.is_dir():
            raise DataError(f"{class_dir}: class folder missing")
        files = [e.name for e in os.scandir(class_dir) if e.is_file()
                 and not e.name.startswith(".") and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS]
        if not files:
            raise DataError(f"{class_dir}: no .tif images")
        entries.extend((f"{name}/{Path(f).stem}", class_dir / f, label) for f in files)
    entries.sort(key=lambda e: e[0])
    ids = np.array([e[0] for e in entries])
    if np.unique(ids).size != ids.size:
        raise DataError(f"{folder}: two patches share a file name stem in one class folder")
    return ids, [e[1] for e in entries], np.array([e[2] for e in entries], dtype=np.int64)
