"""Data: pools with stable sample ids and the loaders for each supported layout."""

from __future__ import annotations

from pathlib import Path

from medactive.data.medmnist import load_medmnist
from medactive.data.pool import Dataset, LazyImages, Split
from medactive.errors import DataError

__all__ = ["Dataset", "LazyImages", "Split", "load_classification_data", "load_medmnist"]


def load_classification_data(path: str | Path, **kwargs) -> Dataset:
    """Load a classification dataset, choosing the loader from the path's layout.

    ``*.npz``: MedMNIST.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.suffix == ".npz":
        return load_medmnist(path, **kwargs)
    raise DataError(f"{path}: unrecognised dataset layout (expected a MedMNIST .npz)")
