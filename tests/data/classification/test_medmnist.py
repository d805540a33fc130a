"""MedMNIST npz loader on tiny hand-made files, and on ../shared/data/medmnist when present."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.data.classification.medmnist import load_medmnist
from medactive.errors import DataError

SIZES = {"train": 6, "val": 2, "test": 3}


def _write(path, *, size=28, rgb=False, flat_labels=False, n_classes=3, drop=None, labels=None):
    arrays = {}
    for split, n in SIZES.items():
        shape = (n, size, size, 3) if rgb else (n, size, size)
        images = np.zeros(shape, dtype=np.uint8)
        images[:, 0, 0] = np.arange(n)[:, None] if rgb else np.arange(n)
        lab = np.arange(n) % n_classes if labels is None else np.asarray(labels[split])
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = (lab if flat_labels else lab[:, None]).astype(np.uint8)
    if drop:
        del arrays[drop]
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("flat_labels", [False, True])
@pytest.mark.parametrize("rgb, size", [(False, 28), (True, 28), (False, 64), (True, 64)])
def test_shapes_labels_and_ids(tmp_path, rgb, size, flat_labels):
    path = _write(tmp_path / "tiny.npz", size=size, rgb=rgb, flat_labels=flat_labels)
    ds = load_medmnist(path)
    channels = 3 if rgb else 1
    assert ds.name == "tiny" and ds.in_channels == channels and ds.classes == ["0", "1", "2"]
    assert ds.train.images.shape == (6, size, size, channels)
    assert ds.test.images.shape == (3, size, size, channels)
    assert ds.train.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert ds.train.labels.dtype == np.int64
    assert ds.val.ids.tolist() == ["val_00000", "val_00001"]
    assert ds.train.images[4, 0, 0, 0] == 4


def test_class_names(tmp_path):
    ds = load_medmnist(_write(tmp_path / "t.npz", n_classes=2), classes=["normal", "pneumonia"])
    assert ds.classes == ["normal", "pneumonia"] and ds.n_classes == 2


def test_missing_key(tmp_path):
    with pytest.raises(DataError, match="missing key val_'labels'|val_labels"):
        load_medmnist(_write(tmp_path / "t.npz", drop="val_labels"))


def test_corrupt_and_missing_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        load_medmnist(bad)
    with pytest.raises(DataError, match="absent.npz"):
        load_medmnist(tmp_path / "absent.npz")


def test_labels_outside_the_class_set(tmp_path):
    labels = {"train": [0, 1, 0, 1, 0, 1], "val": [0, 1], "test": [0, 2, 1]}
    path = _write(tmp_path / "t.npz", labels=labels)
    with pytest.raises(DataError, match="test label 2 of sample 'test_00001' is outside"):
        load_medmnist(path, classes=["a", "b"])


def test_multilabel_rejected(tmp_path):
    path = tmp_path / "multi.npz"
    arrays = {f"{s}_images": np.zeros((2, 28, 28), np.uint8) for s in SIZES}
    arrays |= {f"{s}_labels": np.zeros((2, 14), np.uint8) for s in SIZES}
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="multi-label"):
        load_medmnist(path)


@pytest.mark.parametrize("name, n_train, n_classes, channels", [
    ("pneumoniamnist", 4708, 2, 1), ("retinamnist", 1080, 5, 3), ("bloodmnist", 11959, 8, 3)])
def test_real_files(medmnist_path, name, n_train, n_classes, channels):
    ds = load_medmnist(medmnist_path(name))
    assert len(ds.train) == n_train and ds.n_classes == n_classes
    assert ds.train.images.shape[1:] == (28, 28, channels) and ds.train.images.dtype == np.uint8
