"""2D image/mask pairs (PNG/JPEG/TIFF) as one-slice segmentation volumes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.data.segmentation import load_segmentation_data, looks_like_segmentation_data
from medactive.data.segmentation.base import split_groups
from medactive.data.segmentation.png import (
    find_image_pairs,
    load_image_folder,
    read_image_2d,
    read_mask_2d,
)
from medactive.errors import DataError
from tests.segmentation_data import run_smoke_segmentation

H, W = 12, 16


def rect_mask(value: int = 1) -> np.ndarray:
    """``[H, W]`` background with a filled 6x8 rectangle of ``value`` (48 pixels)."""
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[3:9, 4:12] = value
    return mask


def write_pairs(root: Path, names=("case0", "case1", "case2", "case3", "case4"), *,
                mask_value: int = 1, seed: int = 0) -> Path:
    """Grey PNG images (rectangle bright on dark, plus noise) with masks of the rectangle."""
    rng = np.random.default_rng(seed)
    for name in names:
        mask = rect_mask(mask_value)
        image = np.clip(40 + 150 * (mask > 0) + rng.normal(0, 10, (H, W)), 0, 255)
        for folder, arr in (("images", image.astype(np.uint8)), ("masks", mask)):
            path = root / folder / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(path)
    return root


def load_all(path: Path):
    """Load the folder and read every file (errors of a pair surface when it is read)."""
    data = load_segmentation_data(path)
    for ref in (*data.train, *data.val, *data.test):
        ref.load()
    return data


@pytest.fixture
def pairs(tmp_path) -> Path:
    root = write_pairs(tmp_path / "lesions")
    write_pairs(root, ("site2/case5",), seed=1)
    (root / "val.list").write_text("case3\n")
    (root / "test.list").write_text("case4.png\n")  # an extension is allowed
    return root


def test_ids_split_from_lists_and_one_slice_volumes(pairs):
    assert looks_like_segmentation_data(pairs)
    data = load_segmentation_data(pairs)
    assert data.layout == "image-folder" and data.name == "lesions"
    assert [s.id for s in data.train] == ["case0", "case1", "case2", "site2/case5"]
    assert [s.volume for s in data.train] == [s.id for s in data.train]
    assert [v.id for v in data.val] == ["case3"] and [v.id for v in data.test] == ["case4"]
    assert data.classes == ("background", "class_1")  # inferred from the largest value
    assert data.distance_unit == "voxel" and data.test[0].spacing is None
    image, mask = data.train[3].load()
    assert image.shape == (H, W) and image.dtype == np.float32
    assert image.min() == 0.0 and image.max() == 1.0  # min-max normalised
    np.testing.assert_array_equal(mask, rect_mask())
    image, mask = data.val[0].load()
    assert image.shape == mask.shape == (1, H, W) and int(mask.sum()) == 48
    assert data.describe()["n_train_volumes"] == 4


def test_seeded_split_without_lists(tmp_path):
    names = [f"img{i}" for i in range(10)]
    root = write_pairs(tmp_path / "polyps", names)
    data = load_image_folder(root)
    train, val, test = split_groups(names)
    assert {s.id for s in data.train} == train and len(train) == 7
    assert {v.id for v in data.val} == val and len(val) == 1
    assert {v.id for v in data.test} == test and len(test) == 2
    assert [v.id for v in load_image_folder(root).test] == [v.id for v in data.test]


def test_rgb_image_is_converted_to_grey(tmp_path):
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 1] = 255                 # white: L = 255
    rgb[1, 0] = (255, 0, 0)         # red: L = 0.299 * 255 = 76
    rgb[1, 1] = (0, 0, 255)         # blue: L = 0.114 * 255 = 29
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    grey = read_image_2d(tmp_path / "rgb.png")
    np.testing.assert_allclose(grey, [[0, 1], [76 / 255, 29 / 255]], atol=1e-6)
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg", quality=100)
    assert read_image_2d(tmp_path / "rgb.jpg").shape == (2, 2)


def test_16bit_tiff_keeps_its_values(tmp_path):
    arr = np.array([[0, 1000], [3000, 4000]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "xray.tif")
    np.testing.assert_allclose(read_image_2d(tmp_path / "xray.tif"), arr / 4000)


def test_0_255_masks_read_as_binary_with_classes_file(tmp_path):
    root = write_pairs(tmp_path / "busi", mask_value=255)
    (root / "classes.txt").write_text("background\nlesion\n")
    data = load_all(root)
    assert data.classes == ("background", "lesion")
    _, mask = data.train[0].load()
    assert set(np.unique(mask)) == {0, 1} and int(mask.sum()) == 48
    assert set(np.unique(read_mask_2d(root / "masks" / "case0.png"))) == {0, 1}


def test_multiclass_masks_give_class_names_and_tiff_masks(tmp_path):
    root = write_pairs(tmp_path / "lungs")
    mask = rect_mask()
    mask[5:7, 6:10] = 2
    (root / "masks" / "case1.png").unlink()
    Image.fromarray(mask).save(root / "masks" / "case1.tif")
    data = load_all(root)
    assert data.classes == ("background", "class_1", "class_2")
    loaded = {r.id: r for r in (*data.train, *data.val, *data.test)}
    assert int(np.asarray(loaded["case1"].load()[1]).max()) == 2


def test_nifti_folder_still_goes_to_the_nifti_loader(tmp_path, seg):
    root = write_pairs(tmp_path / "mixed")
    rng = np.random.default_rng(0)
    for i in range(3):
        image, mask = seg.synthetic_volume(rng, 2)
        seg.write_nifti(root / "images" / f"vol{i}.nii.gz", image)
        seg.write_nifti(root / "masks" / f"vol{i}.nii.gz", mask, dtype=np.uint8)
    assert load_segmentation_data(root).layout == "nifti-folder"


def _break(root: Path, case: str) -> Path:
    """Damage a 5-pair folder as ``case`` says; return the file the error must name."""
    images, masks = root / "images", root / "masks"
    if case == "image without mask":
        (masks / "case2.png").unlink()
        return images / "case2.png"
    if case == "mask without image":
        Image.fromarray(rect_mask()).save(masks / "extra.png")
        return masks / "extra.png"
    if case == "corrupt image":
        (images / "case1.png").write_bytes(b"not a png at all")
        return images / "case1.png"
    if case == "corrupt mask":
        (masks / "case1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        return masks / "case1.png"
    if case == "mask size":
        Image.fromarray(np.zeros((H, W + 1), dtype=np.uint8)).save(masks / "case1.png")
        return masks / "case1.png"
    if case == "mask values":
        (root / "classes.txt").write_text("background\nlesion\n")
        Image.fromarray(rect_mask(2)).save(masks / "case1.png")
        return masks / "case1.png"
    if case == "jpeg mask":
        (masks / "case1.png").unlink()
        Image.fromarray(rect_mask(255)).save(masks / "case1.jpg")
        return masks / "case1.jpg"
    if case == "colour mask":
        Image.fromarray(np.stack([rect_mask(), rect_mask(0), rect_mask(0)], -1)).save(
            masks / "case1.png")
        return masks / "case1.png"
    raise AssertionError(case)


@pytest.mark.parametrize("case, message", [
    ("image without mask", "no mask named case2.png"),
    ("mask without image", "mask without an image"),
    ("corrupt image", "not a readable image"),
    ("corrupt mask", "not a readable mask"),
    ("mask size", r"mask size 17x12 \(WxH\) differs from its image"),
    ("mask values", r"mask values \[2\] are outside the classes 0..1"),
    ("jpeg mask", "JPEG masks are not accepted"),
    ("colour mask", "a colour mask"),
])
def test_errors_name_the_file(tmp_path, case, message):
    root = write_pairs(tmp_path / "bad")
    (root / "val.list").write_text("case3\n")
    (root / "test.list").write_text("case4\n")
    culprit = _break(root, case)
    with pytest.raises(DataError, match=message) as info:
        load_all(root)
    assert str(culprit) in str(info.value)


def test_empty_folders_and_missing_masks_folder(tmp_path):
    root = tmp_path / "empty"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    assert not looks_like_segmentation_data(root)
    with pytest.raises(DataError, match="no 2D images") as info:
        load_segmentation_data(root)
    assert str(root / "images") in str(info.value)
    root = write_pairs(tmp_path / "nomasks")
    for f in (root / "masks").iterdir():
        f.unlink()
    (root / "masks").rmdir()
    assert not looks_like_segmentation_data(root)
    with pytest.raises(DataError, match="no masks/"):
        load_segmentation_data(root)
    assert find_image_pairs(write_pairs(tmp_path / "ok", ("a",)))[0][0] == "a"


@pytest.mark.slow
def test_medactive_run_trains_on_png_pairs(tmp_path):
    root = write_pairs(tmp_path / "seg", [f"case{i}" for i in range(8)])
    (root / "val.list").write_text("case6\n")
    (root / "test.list").write_text("case7\n")
    rows = run_smoke_segmentation(root, tmp_path / "run")
    assert [int(r["n_labeled"]) for r in rows] == [2, 4]
    assert all(math.isfinite(float(r["test_dice_mean"])) for r in rows)
    assert all(0 <= float(r["test_dice_mean"]) <= 1 for r in rows)
