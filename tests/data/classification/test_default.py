"""The embedded PneumoniaMNIST default dataset and its licence note."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np

from medactive.data.classification import load_classification_data
from medactive.data.classification.default import load_default_dataset


def test_default_dataset():
    ds = load_default_dataset()
    assert ds.name == "pneumoniamnist" and ds.classes == ["normal", "pneumonia"]
    assert ds.in_channels == 1 and ds.train.images.shape == (4708, 28, 28, 1)
    assert (len(ds.val), len(ds.test)) == (524, 624)
    # counts from the MedMNIST release: train 1214 normal / 3494 pneumonia
    assert np.bincount(ds.train.labels).tolist() == [1214, 3494]
    assert ds.source == "medactive:assets/pneumoniamnist.npz"


def test_asset_is_unmodified_and_attributed():
    assets = resources.files("medactive") / "assets"
    digest = hashlib.md5((assets / "pneumoniamnist.npz").read_bytes()).hexdigest()
    assert digest == "28209eda62fecd6e6a2d98b1501bb15f"  # MD5 in MedMNIST's INFO
    note = (assets / "PNEUMONIAMNIST_LICENSE.md").read_text()
    assert "CC BY 4.0" in note and "Yang" in note and "Kermany" in note


def test_special_name_default():
    ds = load_classification_data("default")
    assert ds.name == "pneumoniamnist" and len(ds.train) == 4708
