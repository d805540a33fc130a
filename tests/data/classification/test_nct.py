"""NCT-CRC-HE-100K: class folders of .tif patches, 9:1 stratified train/val, CRC-VAL-HE-7K test."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from medactive.data.classification import load_classification_data
from medactive.data.classification.nct import NCT_CLASSES, load_nct_crc_he
from medactive.errors import DataError


def test_layout_split_and_ids(nct_root):
    ds = load_nct_crc_he(nct_root, image_size=4, seed=0)
    assert ds.classes == list(NCT_CLASSES) and ds.in_channels == 3
    assert (len(ds.train), len(ds.val), len(ds.test)) == (81, 9, 18)
    assert np.bincount(ds.val.labels).tolist() == [1] * 9  # 9:1 within every class
    assert np.bincount(ds.test.labels).tolist() == [2] * 9
    assert list(ds.train.ids) == sorted(ds.train.ids)
    assert not set(ds.train.ids) & set(ds.val.ids)
    assert ds.test.ids[0] == "ADI/ADI-TCGA00"
    image = ds.train.images[0]
    assert image.shape == (4, 4, 3) and image.dtype == np.uint8
    # labels follow the class folder (the fixture writes the class index into the images)
    full = load_nct_crc_he(nct_root, image_size=8)
    for split in (full.train, full.test):
        for i in (0, len(split) - 1):
            assert split.images[i][0, 0, 0] == split.labels[i]
            assert split.ids[i].split("/")[0] == NCT_CLASSES[split.labels[i]]


def test_default_size_is_native_224(nct_root):
    ds = load_nct_crc_he(nct_root)
    assert ds.val.images[0].shape == (224, 224, 3)


def test_split_follows_seed(nct_root):
    a = load_nct_crc_he(nct_root, seed=0, image_size=8)
    b = load_nct_crc_he(nct_root, seed=0, image_size=8)
    c = load_nct_crc_he(nct_root, seed=1, image_size=8)
    assert np.array_equal(a.val.ids, b.val.ids)
    assert not np.array_equal(a.val.ids, c.val.ids)


def test_dispatch_from_root_or_train_folder(nct_root):
    for path in (nct_root, nct_root / "NCT-CRC-HE-100K"):
        ds = load_classification_data(path, image_size=8, seed=0)
        assert ds.name == "nct-crc-he-100k" and len(ds.test) == 18


def test_missing_test_set(nct_root):
    shutil.rmtree(nct_root / "CRC-VAL-HE-7K")
    with pytest.raises(DataError, match="CRC-VAL-HE-7K"):
        load_nct_crc_he(nct_root)


def test_missing_and_unknown_class_folders(nct_root):
    (nct_root / "NCT-CRC-HE-100K" / "FAT").mkdir()
    with pytest.raises(DataError, match="unknown class folder.*FAT"):
        load_nct_crc_he(nct_root)
    (nct_root / "NCT-CRC-HE-100K" / "FAT").rmdir()
    shutil.rmtree(nct_root / "CRC-VAL-HE-7K" / "MUS")
    with pytest.raises(DataError, match="MUS: class folder missing"):
        load_nct_crc_he(nct_root)


def test_corrupt_patch_names_the_file(nct_root):
    (nct_root / "NCT-CRC-HE-100K" / "ADI" / "ADI-TRAIN00.tif").write_bytes(b"\x00" * 10)
    ds = load_nct_crc_he(nct_root, image_size=8)
    split = ds.train if "ADI/ADI-TRAIN00" in ds.train.ids else ds.val
    with pytest.raises(DataError, match="ADI-TRAIN00.tif"):
        split.images[list(split.ids).index("ADI/ADI-TRAIN00")]
