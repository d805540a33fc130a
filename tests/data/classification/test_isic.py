"""ISIC 2020: ground-truth CSV + JPEG folder, a 6:1:3 split by patient."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.data.classification import load_classification_data
from medactive.data.classification.isic import load_isic2020
from medactive.errors import DataError


def test_no_patient_in_two_splits(isic_root):
    ds = load_isic2020(isic_root, image_size=8, seed=0)
    assert ds.classes == ["benign", "malignant"] and ds.in_channels == 3
    sets = [set(s.groups) for s in (ds.train, ds.val, ds.test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(len(s) for s in sets) == 20
    assert len(ds.train) + len(ds.val) + len(ds.test) == 39
    # the 5 malignant patients are spread so every split has one
    assert all(s.labels.sum() >= 1 for s in (ds.train, ds.val, ds.test))
    assert list(ds.train.ids) == sorted(ds.train.ids)


def test_images_resized_and_labels_match_csv(isic_root):
    ds = load_isic2020(isic_root, image_size=(6, 5))
    assert ds.train.images[0].shape == (6, 5, 3)
    assert load_isic2020(isic_root).test.images[0].shape == (224, 224, 3)
    rows = (isic_root / "ISIC_2020_Training_GroundTruth.csv").read_text().splitlines()[1:]
    target = {r.split(",")[0]: int(r.split(",")[-1]) for r in rows}
    patient = {r.split(",")[0]: r.split(",")[1] for r in rows}
    for split in (ds.train, ds.val, ds.test):
        assert [target[i] for i in split.ids] == split.labels.tolist()
        assert [patient[i] for i in split.ids] == split.groups.tolist()


def test_split_reproducible_per_seed(isic_root):
    a, b = load_isic2020(isic_root, seed=4), load_isic2020(isic_root, seed=4)
    assert np.array_equal(a.test.ids, b.test.ids)
    seeds = {tuple(load_isic2020(isic_root, seed=s).test.ids) for s in range(4)}
    assert len(seeds) > 1


@pytest.mark.parametrize("image_dir", ["ISIC_2020_Training_JPEG/train", "jpeg/train"])
def test_other_jpeg_folders_and_dispatch(tmp_path, write_isic, image_dir):
    root = write_isic(tmp_path / "isic", image_dir=image_dir, n_patients=6)
    ds = load_classification_data(root, image_size=8)
    assert ds.name == "isic2020" and ds.info["image_dir"].endswith(image_dir)
    assert ds.train.images[0].shape == (8, 8, 3)


def test_missing_image_names_the_line(isic_root):
    csv_path = isic_root / "ISIC_2020_Training_GroundTruth.csv"
    name = csv_path.read_text().splitlines()[5].split(",")[0]
    (isic_root / "train" / f"{name}.jpg").unlink()
    with pytest.raises(DataError, match=f"line 6: image file .*{name}.jpg not found"):
        load_isic2020(isic_root)


@pytest.mark.parametrize("edit, match", [
    (lambda r: r.replace(",0\n", ",benign\n", 1), r"line \d+: target 'benign'"),
    (lambda r: r.replace(",IP_0000003,", ",,", 1), r"line \d+: empty patient_id"),
    (lambda r: r.replace("target", "label", 1), r"missing column\(s\) \['target'\]"),
    (lambda r: r + r.splitlines()[1] + "\n", r"line 41: duplicate image_name"),
])
def test_csv_errors(isic_root, edit, match):
    csv_path = isic_root / "ISIC_2020_Training_GroundTruth.csv"
    csv_path.write_text(edit(csv_path.read_text()))
    with pytest.raises(DataError, match=match):
        load_isic2020(isic_root)


def test_no_jpeg_folder(tmp_path, write_isic):
    root = write_isic(tmp_path / "isic", image_dir="elsewhere", n_patients=3)
    with pytest.raises(DataError, match="not found in any of"):
        load_isic2020(root)
