"""The embedded default dataset: PneumoniaMNIST 28×28, shipped inside the package.

The file ``medactive/assets/pneumoniamnist.npz`` is MedMNIST v2's PneumoniaMNIST, unmodified,
under CC BY 4.0; the attribution and licence sit beside it in ``PNEUMONIAMNIST_LICENSE.md``.

References:
    Yang et al., "MedMNIST v2", Scientific Data 10, 41 (2023); Kermany et al., Cell 172(5),
    2018 (source chest X-rays).
"""

from __future__ import annotations

from importlib import resources

from medactive.data.classification.medmnist import load_medmnist
from medactive.data.pool import Dataset
from medactive.errors import DataError

DEFAULT_NAME = "pneumoniamnist"
DEFAULT_CLASSES = ("normal", "pneumonia")
_ASSET = "pneumoniamnist.npz"


def load_default_dataset() -> Dataset:
    """PneumoniaMNIST (4,708 / 524 / 624 grayscale 28×28 chest X-rays; normal vs pneumonia).

    Example:
        >>> ds = load_default_dataset()
        >>> ds.name, ds.classes, ds.train.images.shape
        ('pneumoniamnist', ['normal', 'pneumonia'], (4708, 28, 28, 1))
    """
    asset = resources.files("medactive") / "assets" / _ASSET
    if not asset.is_file():
        raise DataError(f"embedded dataset {_ASSET} is missing from the installed package "
                        "(medactive/assets); reinstall medactive")
    with resources.as_file(asset) as path:
        dataset = load_medmnist(path, name=DEFAULT_NAME, classes=list(DEFAULT_CLASSES))
    dataset.source = f"medactive:assets/{_ASSET}"
    dataset.info["license"] = "CC BY 4.0 (see medactive/assets/PNEUMONIAMNIST_LICENSE.md)"
    return dataset
