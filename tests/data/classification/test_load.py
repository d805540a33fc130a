"""load_classification_data: dispatch on the path's layout, clear errors for the rest."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.data.classification import load_classification_data
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
    for i in range(10):  # 5 of each class: fewer would be refused as a typo
        make_image(root / f"x{i}.png")
    text = "path,label\n" + "".join(f"x{i}.png,{'ab'[i % 2]}\n" for i in range(10))
    csv_path = tmp_path / "elsewhere.csv"
    csv_path.write_text(text)
    ds = load_classification_data(root, labels=csv_path, seed=1)
    assert ds.classes == ["a", "b"] and sum(map(len, (ds.train, ds.val, ds.test))) == 10
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


def _medmnist_arrays() -> dict[str, np.ndarray]:
    arrays = {f"{s}_images": np.zeros((2, 8, 8), np.uint8) for s in ("train", "val", "test")}
    return arrays | {f"{s}_labels": np.array([[0], [1]]) for s in ("train", "val", "test")}


def test_npz_missing_key_names_it_plainly(tmp_path):
    arrays = _medmnist_arrays()
    del arrays["val_labels"]
    np.savez(tmp_path / "nokey.npz", **arrays)
    with pytest.raises(DataError, match=r"nokey.npz: missing key val_labels;"):
        load_classification_data(tmp_path / "nokey.npz")


@pytest.mark.parametrize("content", ["text", "npy"])
def test_file_named_npz_that_is_not_one(tmp_path, content):
    path = tmp_path / "fake.npz"
    if content == "text":
        path.write_text("id,label\na,1\n")
    else:
        with open(path, "wb") as fh:
            np.save(fh, np.zeros(3))  # a single .npy array, not an archive
    with pytest.raises(DataError, match=r"fake.npz: not a valid .npz file") as info:
        load_classification_data(path)
    assert "pickle" not in str(info.value)


def test_classes_refused_where_the_layout_names_its_own(nct_root):
    with pytest.raises(DataError, match=r"--classes .*image folder"):
        load_classification_data("default", classes=["a", "b"])
    with pytest.raises(DataError, match=r"--classes .*image folder"):
        load_classification_data(nct_root, classes=["a", "b"])
