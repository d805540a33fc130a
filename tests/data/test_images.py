"""Image reading helpers: channel conversion, resizing, errors naming the file, id listing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medactive.data.images import (
    check_image_size,
    find_images,
    infer_format,
    read_image,
    resize_array,
)
from medactive.errors import DataError


def test_read_grayscale_png_as_one_channel(tmp_path, make_image):
    path = make_image(tmp_path / "a.png", value=7)
    arr = read_image(path, channels=1)
    assert arr.shape == (8, 8, 1) and arr.dtype == np.uint8
    assert arr[0, 0, 0] == 7 and arr[1, 1, 0] == 100


def test_read_converts_channels_both_ways(tmp_path, make_image):
    gray = make_image(tmp_path / "g.tif")
    rgb = make_image(tmp_path / "c.jpg", mode="RGB")
    assert read_image(gray, channels=3).shape == (8, 8, 3)
    assert read_image(rgb, channels=1).shape == (8, 8, 1)


def test_read_resizes_to_height_width(tmp_path, make_image):
    path = make_image(tmp_path / "a.png", size=(10, 12))
    assert read_image(path, channels=1, size=(4, 6)).shape == (4, 6, 1)


def test_16bit_tiff_is_stretched_not_clipped(tmp_path):
    arr = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    path = tmp_path / "x.tif"
    Image.fromarray(arr).save(path)
    out = read_image(path, channels=1)[..., 0]
    assert out.tolist() == [[0, 64], [128, 255]]


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png"):
        read_image(bad, channels=1)
    with pytest.raises(DataError, match="nothere.png"):
        read_image(tmp_path / "nothere.png", channels=1)


def test_find_images_ids_are_relative_paths_without_extension(tmp_path, make_image):
    for rel in ("b.png", "a.jpg", "site2/case0001.tif", ".hidden.png", "notes.txt"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        if rel.endswith(".txt"):
            (tmp_path / rel).write_text("x")
        else:
            make_image(tmp_path / rel)
    assert [i for i, _ in find_images(tmp_path)] == ["a", "b", "site2/case0001"]


def test_find_images_refuses_two_files_with_one_id(tmp_path, make_image):
    make_image(tmp_path / "a.png")
    make_image(tmp_path / "a.jpg")
    with pytest.raises(DataError, match="'a'"):
        find_images(tmp_path)


def test_infer_format(tmp_path, make_image):
    gray = [make_image(tmp_path / f"{i}.png") for i in range(2)]
    assert infer_format(gray, channels=None, image_size=None) == (1, (8, 8))
    rgb = make_image(tmp_path / "c.png", mode="RGB", size=(6, 6))
    with pytest.raises(DataError, match="image_size"):
        infer_format(gray + [rgb], channels=None, image_size=None)
    assert infer_format(gray + [rgb], channels=None, image_size=5) == (3, (5, 5))


def test_check_image_size():
    assert check_image_size(None) is None
    assert check_image_size(28) == (28, 28)
    assert check_image_size((4, 6)) == (4, 6)
    with pytest.raises(DataError):
        check_image_size(0)
    with pytest.raises(DataError):
        check_image_size("big")


def test_resize_array_keeps_channels():
    images = np.zeros((3, 8, 8, 1), dtype=np.uint8)
    assert resize_array(images, (4, 4)).shape == (3, 4, 4, 1)
    assert resize_array(np.zeros((2, 8, 8, 3), np.uint8), (16, 16)).shape == (2, 16, 16, 3)
    assert resize_array(images, (8, 8)) is images
