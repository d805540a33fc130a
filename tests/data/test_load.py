"""load_classification_data: dispatch on the path's layout, clear errors for the rest."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.data import load_classification_data
from medactive.errors import DataError


def test_npz_and_resize(tmp_path):
    path = tmp_path / "mini.npz"
    arrays = {f"{s}_images": np.zeros((2, 28, 28), np.uint8) for s in ("train", "val", "test")}
    arrays |= {f"{s}_labels": np.array([[0], [1]], np.uint8) for s in ("train", "val", "test")}
    np.savez(path, **arrays)
    assert load_classification_data(path).train.images.shape == (2, 28, 28, 1)
    ds = load_classification_data(path, image_size=64, classes=["a", "b"])
    assert ds.train.images.shape == (2, 64, 64, 1) and ds.classes == ["a", "b"]


def test_image_folder_with_labels_csv_or_labels_argument(tmp_path, make_image):
    root = tmp_path / "imgs"
    for i in range(9):
        make_image(root / f"x{i}.png")
    text = "path,label\n" + "".join(f"x{i}.png,{'ab'[i % 2]}\n" for i in range(9))
    csv_path = tmp_path / "elsewhere.csv"
    csv_path.write_text(text)
    ds = load_classification_data(root, labels=csv_path, seed=1)
    assert ds.classes == ["a", "b"] and sum(map(len, (ds.train, ds.val, ds.test))) == 9
    with pytest.raises(DataError, match="unrecognised dataset layout"):
        load_classification_data(root)
    (root / "labels.csv").write_text(text)
    ds = load_classification_data(root, image_size=4)
    assert ds.train.images[0].shape == (4, 4, 1)


def test_isic_and_nct_detected(isic_root, nct_root):
    assert load_classification_data(isic_root).name == "isic2020"
    csv_path = isic_root / "ISIC_2020_Training_GroundTruth.csv"
    assert load_classification_data(csv_path).name == "isic2020"
    assert load_classification_data(nct_root).name == "nct-crc-he-100k"


def test_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match="nowhere.npz: no such file"):
        load_classification_data(tmp_path / "nowhere.npz")
    other = tmp_path / "table.csv"
    other.write_text("a,b\n")
    with pytest.raises(DataError, match="table.csv: unrecognised dataset layout"):
        load_classification_data(other)
