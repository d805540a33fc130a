"""Data: pools with stable sample ids and the loaders for each supported layout."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from medactive.data.classification.default import load_default_dataset
from medactive.data.classification.folder import load_image_folder
from medactive.data.classification.isic import find_isic_csv, load_isic2020
from medactive.data.classification.medmnist import load_medmnist
from medactive.data.classification.nct import find_nct_root, load_nct_crc_he
from medactive.data.images import check_image_size, resize_array
from medactive.data.pool import Dataset, LazyImages, Split
from medactive.data.splits import split_indices
from medactive.errors import DataError

__all__ = ["Dataset", "LazyImages", "Split", "load_classification_data", "load_default_dataset",
           "load_image_folder", "load_isic2020", "load_medmnist", "load_nct_crc_he",
           "split_indices"]

logger = logging.getLogger(__name__)

DEFAULT_DATA = "default"


def load_classification_data(path: str | Path, *, image_size: int | tuple[int, int] | None = None,
                             seed: int = 0, labels: str | Path | None = None,
                             channels: int | None = None, classes: Sequence[str] | None = None,
                             name: str | None = None) -> Dataset:
    """Load a classification dataset, choosing the loader from the path's layout.

    - ``"default"``: the embedded PneumoniaMNIST (:func:`load_default_dataset`).
    - ``*.npz``: a MedMNIST file (:func:`load_medmnist`); resized in memory if ``image_size``
      differs from its size.
    - a folder holding ``NCT-CRC-HE-100K/`` (and ``CRC-VAL-HE-7K/``): :func:`load_nct_crc_he`.
    - a folder holding ``ISIC_2020_Training_GroundTruth.csv``: :func:`load_isic2020`.
    - a folder holding ``labels.csv``, or any folder when ``labels`` names a CSV:
      :func:`load_image_folder`.

    Args:
        path: file, folder or ``"default"``.
        image_size: resize images to this (int = square); loaders' defaults otherwise.
        seed: seed of the train/val/test split for layouts that have none.
        labels: labels CSV of an image folder (default ``<folder>/labels.csv``).
        channels: image folder only: 1 or 3 (default: from the images).
        classes: class names in label order (MedMNIST and image folder; refused for the
            other layouts, which name their own).
        name: dataset name (MedMNIST and image folder).

    Raises:
        DataError: the path does not exist or matches no layout (the message names it);
            ``classes`` for a layout that names its own.
    """
    if str(path) == DEFAULT_DATA:
        _no_classes(classes, "the embedded default dataset")
        dataset = load_default_dataset()
        return _resize_in_memory(dataset, image_size)
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if labels is not None:
        return load_image_folder(path, labels=labels, image_size=image_size, channels=channels,
                                 classes=classes, seed=seed, name=name)
    if path.is_file() and path.suffix.lower() == ".npz":
        dataset = load_medmnist(path, name=name, classes=list(classes) if classes else None)
        return _resize_in_memory(dataset, image_size)
    if find_isic_csv(path) is not None:
        _no_classes(classes, "ISIC 2020")
        return load_isic2020(path, image_size=image_size, seed=seed)
    if find_nct_root(path) is not None:
        _no_classes(classes, "NCT-CRC-HE")
        return load_nct_crc_he(path, image_size=image_size, seed=seed)
    if path.is_dir() and (path / "labels.csv").is_file():
        return load_image_folder(path, image_size=image_size, channels=channels,
                                 classes=classes, seed=seed, name=name)
    raise DataError(
        f"{path}: unrecognised dataset layout; expected 'default', a MedMNIST .npz, a folder "
        "with NCT-CRC-HE-100K/, a folder with ISIC_2020_Training_GroundTruth.csv, or an image "
        "folder with labels.csv (or pass the labels CSV)")


def _no_classes(classes: Sequence[str] | None, layout: str) -> None:
    if classes is not None:
        raise DataError(f"--classes (classes=) applies to an image folder with a labels CSV or a "
                        f"MedMNIST .npz; {layout} names its own classes")


def _resize_in_memory(dataset: Dataset, image_size: int | tuple[int, int] | None) -> Dataset:
    """Resize the in-memory splits of a MedMNIST dataset when ``image_size`` differs."""
    size = check_image_size(image_size)
    if size is None or dataset.train.images.shape[1:3] == size:
        return dataset
    logger.info("resizing %s from %dx%d to %dx%d", dataset.name,
                *dataset.train.images.shape[1:3], *size)
    for split_name in ("train", "val", "test"):
        split = getattr(dataset, split_name)
        split.images = resize_array(split.images, size)
    dataset.info["image_size"] = list(size)
    return dataset
