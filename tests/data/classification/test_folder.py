"""Image folder + labels CSV: ids, label encoding, splits, lazy images, errors naming the line."""

from __future__ import annotations

import re

import numpy as np
import pytest

from medactive.data.classification.folder import load_image_folder
from medactive.data.pool import LazyImages
from medactive.errors import DataError


def _folder(tmp_path, make_image, csv_text, files=None, **image_kw):
    root = tmp_path / "scans"
    files = files or [f"case{i:04d}.png" for i in range(10)]
    for i, rel in enumerate(files):
        make_image(root / rel, value=i, **image_kw)
    (root / "labels.csv").write_text(csv_text)
    return root


def _rows(n=10, label=lambda i: "pneumonia" if i % 2 else "normal"):
    return "path,label\n" + "".join(f"case{i:04d}.png,{label(i)}\n" for i in range(n))


def test_path_column_ids_sorted_string_labels(tmp_path, make_image):
    root = _folder(tmp_path, make_image, _rows())
    ds = load_image_folder(root, seed=0)
    assert ds.classes == ["normal", "pneumonia"] and ds.in_channels == 1
    # 7:1:2 by default, but every class (5 samples each) reaches every split: 6/2/2
    assert [len(ds.train), len(ds.val), len(ds.test)] == [6, 2, 2]
    assert all(set(s.labels) == {0, 1} for s in (ds.train, ds.val, ds.test))
    all_ids = sorted(np.concatenate([ds.train.ids, ds.val.ids, ds.test.ids]))
    assert all_ids == [f"case{i:04d}" for i in range(10)]
    assert list(ds.train.ids) == sorted(ds.train.ids)
    assert isinstance(ds.train.images, LazyImages)
    image = ds.train.images[0]
    assert image.shape == (8, 8, 1) and image.dtype == np.uint8
    i = int(ds.train.ids[0][4:])
    assert image[0, 0, 0] == i and ds.train.labels[0] == i % 2  # image matches its id


def test_id_column_finds_any_extension_in_subfolders(tmp_path, make_image):
    files = ["a.png", "b.jpg", "site2/case0001.tif", "c.tiff", "d.jpeg", "e.png"]
    csv_text = ("id,label,split\na,1,train\nb,0,train\nsite2/case0001,1,train\nc,0,val\n"
                "d,1,test\ne,2,train\n")
    # classes given: three classes of one or two samples each are refused otherwise
    ds = load_image_folder(_folder(tmp_path, make_image, csv_text, files), name="mine",
                           classes=["0", "1", "2"])
    assert ds.name == "mine" and ds.classes == ["0", "1", "2"]
    assert list(ds.train.ids) == ["a", "b", "e", "site2/case0001"]
    assert list(ds.train.labels) == [1, 0, 2, 1]
    assert list(ds.val.ids) == ["c"] and list(ds.test.ids) == ["d"]


def test_given_classes_accept_names_and_indices(tmp_path, make_image):
    text = "path,label,split\n" + "".join(
        f"case{i:04d}.png,{lab},{s}\n" for i, (lab, s) in
        enumerate([("tumour", "train"), ("1", "train"), ("healthy", "val"), ("0", "test")]))
    root = _folder(tmp_path, make_image, text, [f"case{i:04d}.png" for i in range(4)])
    ds = load_image_folder(root, classes=["healthy", "tumour"])
    assert list(ds.train.labels) == [1, 1] and list(ds.val.labels) == [0]
    with pytest.raises(DataError,
                       match=r"not in the given classes \['healthy', 'other'\]: 'tumour' on line 2"):
        load_image_folder(root, classes=["healthy", "other"])


def test_patient_groups_never_cross_splits(tmp_path, make_image):
    n = 30
    text = "path,label,patient\n" + "".join(
        f"case{i:04d}.png,{i % 3},p{i // 3}\n" for i in range(n))
    root = _folder(tmp_path, make_image, text, [f"case{i:04d}.png" for i in range(n)])
    ds = load_image_folder(root, seed=3)
    sets = [set(s.groups) for s in (ds.train, ds.val, ds.test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(len(s) for s in sets) == 10
    again = load_image_folder(root, seed=3)
    assert np.array_equal(ds.test.ids, again.test.ids)


def test_sizes_differ_needs_image_size(tmp_path, make_image):
    root = _folder(tmp_path, make_image, _rows())
    make_image(root / "case0003.png", size=(12, 6), mode="RGB")
    with pytest.raises(DataError, match="image_size"):
        load_image_folder(root)
    ds = load_image_folder(root, image_size=4)
    assert ds.in_channels == 3 and ds.train.images[0].shape == (4, 4, 3)


@pytest.mark.parametrize("csv_text, match", [
    ("path,label\ncase0000.png,a\nmissing.png,b\n", r"line 3: image file .*missing.png"),
    ("id,label\ncase0000,a\nnothere,b\n", r"line 3: no image file for id 'nothere'"),
    ("path,label\ncase0000.png,a\ncase0001.png,b\ncase0000.png,b\n",
     r"line 4: duplicate id 'case0000' \(first on line 2\)"),
    ("path,label\ncase0000.png,a\ncase0001.png,\n", r"line 3: empty label"),
    ("path,label,split\ncase0000.png,a,train\ncase0001.png,b,holdout\n", r"line 3: split"),
    ("path,label\ncase0000.png,-1\n", r"line 2: negative label"),
    ("path,cls\ncase0000.png,a\n", r"needs columns"),
    ("path,label,split\n" + "".join(f"case{i:04d}.png,{'ab'[i % 2]},{('train', 'test')[i // 5]}\n"
                                    for i in range(10)), r"no samples in the val"),
    ("path,label\n", r"no samples"),
])
def test_errors_name_the_line(tmp_path, make_image, csv_text, match):
    root = _folder(tmp_path, make_image, csv_text)
    with pytest.raises(DataError, match=match):
        load_image_folder(root)


def test_missing_csv_and_corrupt_image(tmp_path, make_image):
    root = _folder(tmp_path, make_image, _rows())
    with pytest.raises(DataError, match="other.csv"):
        load_image_folder(root, labels=root / "other.csv")
    ds = load_image_folder(root, image_size=8, channels=1)
    idx = list(ds.train.ids).index(ds.train.ids[-1])
    (root / f"{ds.train.ids[idx]}.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=f"{ds.train.ids[idx]}.png"):
        ds.train.images[idx]


def test_labels_csv_elsewhere(tmp_path, make_image):
    root = _folder(tmp_path, make_image, "")
    (root / "labels.csv").unlink()
    csv_path = tmp_path / "my_labels.csv"
    csv_path.write_text(_rows())
    ds = load_image_folder(root, labels=csv_path)
    assert ds.info["labels_csv"] == str(csv_path)


def _labelled(tmp_path, make_image, labels):
    """A folder of ``len(labels)`` images; CSV line ``i + 2`` holds ``labels[i]``."""
    text = "path,label\n" + "".join(f"case{i:04d}.png,{lab}\n" for i, lab in enumerate(labels))
    return _folder(tmp_path, make_image, text, [f"case{i:04d}.png" for i in range(len(labels))])


def test_typo_class_refused_naming_its_line(tmp_path, make_image):
    # 6 normal, 6 malignant and one typo on CSV line 5 (row index 3)
    labels = ["normal", "malignant"] * 6
    labels.insert(3, "malignnat")
    root = _labelled(tmp_path, make_image, labels)
    with pytest.raises(DataError, match=r"class 'malignnat' has 1 sample \(line 5\).*fewer "
                       r"than 5.*classes"):
        load_image_folder(root)


def test_class_with_min_samples_is_kept(tmp_path, make_image):
    root = _labelled(tmp_path, make_image, ["a"] * 10 + ["b"] * 5)  # exactly the threshold
    assert load_image_folder(root).classes == ["a", "b"]


def test_integer_typo_class_refused(tmp_path, make_image):
    root = _labelled(tmp_path, make_image, [0, 1] * 6 + [11])  # '11' for '1' on line 14
    with pytest.raises(DataError, match=r"class '11' has 1 sample \(line 14\)"):
        load_image_folder(root)


@pytest.mark.parametrize("missing", ["nan", "NaN", "NA", "n/a", "None", "null", "-", "?"])
def test_missing_data_values_refused_naming_lines(tmp_path, make_image, missing):
    labels = ["a", "b"] * 6 + [missing] * 6  # common enough to pass the rare-class rule
    root = _labelled(tmp_path, make_image, labels)
    with pytest.raises(DataError, match=rf"look like missing data: {re.escape(repr(missing))} "
                       r"on lines 14, 15, 16, 17, 18, 19"):
        load_image_folder(root)


def test_explicit_classes_accept_rare_class(tmp_path, make_image):
    root = _labelled(tmp_path, make_image, ["a", "b"] * 6 + ["c"] * 3)
    ds = load_image_folder(root, classes=["a", "b", "c"])
    assert ds.classes == ["a", "b", "c"] and ds.class_counts() == {"a": 6, "b": 6, "c": 3}


def test_explicit_classes_name_every_row_outside_them(tmp_path, make_image):
    labels = ["a", "b"] * 6
    labels[2], labels[5], labels[7] = "benigm", "nan", "benigm"  # CSV lines 4, 7, 9
    root = _labelled(tmp_path, make_image, labels)
    with pytest.raises(DataError, match=r"labels not in the given classes \['a', 'b'\]: "
                       r"'benigm' on lines 4, 9; 'nan' on line 7"):
        load_image_folder(root, classes=["a", "b"])


def test_class_counts_line(tmp_path, make_image):
    root = _labelled(tmp_path, make_image, ["normal"] * 10 + ["pneumonia"] * 5)
    ds = load_image_folder(root)
    assert ds.class_counts() == {"normal": 10, "pneumonia": 5}
    assert ds.class_counts("train") == {"normal": len(ds.train) - int(ds.train.labels.sum()),
                                        "pneumonia": int(ds.train.labels.sum())}
    assert ds.describe_classes() == "2 classes: normal 10, pneumonia 5"
