"""MedMNIST v2 ``.npz`` files (Yang et al., Scientific Data 2023).

Keys ``train_images``, ``train_labels``, ``val_*``, ``test_*``; images ``(N, H, W)`` grayscale or
``(N, H, W, 3)`` RGB at 28/64/128/224 px; labels ``(N, 1)`` or ``(N,)``. Sample ids are
``"<split>_<row>"`` (e.g. ``"train_00042"``), stable across loads.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from medactive.data.pool import Dataset, Split
from medactive.errors import DataError

SPLITS = ("train", "val", "test")


def load_medmnist(path: str | Path, *, name: str | None = None,
                  classes: list[str] | None = None) -> Dataset:
    """Load a MedMNIST npz file as a :class:`Dataset`.

    Args:
        path: the ``.npz`` file.
        name: dataset name (default: the file stem).
        classes: class names (default: ``"0".."c-1"`` from the largest label seen).

    Raises:
        DataError: missing file or key, unreadable archive, shape mismatch, negative labels.

    Example:
        >>> ds = load_medmnist("pneumoniamnist.npz")  # doctest: +SKIP
        >>> ds.train.images.shape, ds.n_classes  # doctest: +SKIP
        ((4708, 28, 28, 1), 2)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    # numpy would load a text or .npy file too (or suggest allow_pickle): check the archive first
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a valid .npz file (not a zip archive of arrays; a MedMNIST "
                        "file holds train/val/test _images and _labels)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        reason = ("it holds pickled objects, not plain arrays" if "pickle" in str(exc)
                  else str(exc))
        raise DataError(f"{path}: not a valid .npz file ({reason})") from exc
    splits = {}
    max_label = -1
    for split in SPLITS:
        for kind in ("images", "labels"):
            if f"{split}_{kind}" not in arrays:
                raise DataError(f"{path}: missing key {split}_{kind}; a MedMNIST file has "
                                "train/val/test _images and _labels")
        images = arrays[f"{split}_images"]
        labels = arrays[f"{split}_labels"]
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise DataError(f"{path}: {split}_images has shape {arrays[f'{split}_images'].shape};"
                            " expected (N, H, W) or (N, H, W, 3)")
        if labels.ndim == 2 and labels.shape[1] != 1:
            raise DataError(f"{path}: {split}_labels has shape {labels.shape}; multi-label "
                            "MedMNIST sets (e.g. ChestMNIST) are not supported")
        labels = labels.reshape(-1)
        if labels.shape[0] != images.shape[0]:
            raise DataError(f"{path}: {split} has {images.shape[0]} images but "
                            f"{labels.shape[0]} labels")
        if (labels.size and not np.issubdtype(labels.dtype, np.integer)
                and not np.all(np.equal(np.mod(labels, 1), 0))):
            raise DataError(f"{path}: {split}_labels are not integer class indices")
        labels = labels.astype(np.int64)
        if labels.size and labels.min() < 0:
            raise DataError(f"{path}: {split}_labels contains negative label {labels.min()}")
        max_label = max(max_label, int(labels.max()) if labels.size else -1)
        ids = np.array([f"{split}_{i:05d}" for i in range(images.shape[0])])
        splits[split] = Split(ids, images, labels)
    if classes is None:
        classes = [str(c) for c in range(max_label + 1)]
    dataset = Dataset(name=name or path.stem, classes=list(classes), train=splits["train"],
                      val=splits["val"], test=splits["test"],
                      in_channels=int(splits["train"].images.shape[-1]), source=str(path))
    dataset.check_labels()
    return dataset
