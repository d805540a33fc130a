"""Segmentation projects over 2D images: one sample per image, PNG masks, export/import, query."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.errors import DataError
from medactive.project.exporter import export_batch
from medactive.project.importer import BadRows, import_labels
from medactive.project.server import render_png
from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project, query

pytest.importorskip("medactive.tasks.segmentation.task")

H, W = 12, 16


def rect_mask(value: int = 1) -> np.ndarray:
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[3:9, 4:12] = value
    return mask


def write_image(path: Path, *, rgb: bool = False, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    grey = np.clip(40 + 150 * rect_mask() + rng.normal(0, 10, (H, W)), 0, 255).astype(np.uint8)
    arr = np.stack([grey, grey // 2, grey // 3], -1) if rgb else grey
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_mask(path: Path, value: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rect_mask(value)).save(path)


@pytest.fixture
def png_folder(tmp_path) -> Path:
    """case0..case4 (case1 RGB, case2 JPEG); case3/case4 with masks are val/test."""
    root = tmp_path / "lesions"
    for i in range(5):
        suffix = ".jpg" if i == 2 else ".png"
        write_image(root / "images" / f"case{i}{suffix}", rgb=i == 1, seed=i)
    for i in (3, 4):
        write_mask(root / "masks" / f"case{i}.png")
    (root / "val.list").write_text("case3\n")
    (root / "test.list").write_text("case4\n")
    (root / "classes.txt").write_text("background\nlesion\n")
    return root


@pytest.fixture
def png_project(tmp_path, png_folder) -> ProjectStore:
    return init_project(tmp_path / "proj", png_folder, task="segmentation", preset="smoke",
                        initial=2)


def test_init_one_sample_per_image(png_project):
    store = png_project
    assert store.classes == ["background", "lesion"]
    assert store.pool_ids() == ["case0", "case1", "case2"]
    assert all(s.frame == 0 for s in store.samples("pool"))
    assert [s.id for s in store.samples("val")] == ["case3"]
    assert [(s.id, s.frame) for s in store.samples("test")] == [("case4", None)]
    assert store.get_meta("volumes")["case2"] == {
        "path": "images/case2.jpg", "mask": None, "shape": [1, H, W], "split": "pool",
        "format": "image"}
    assert store.current_labels() == {}  # val/test masks are read from the folder


def test_pool_masks_become_initial_labels(tmp_path, png_folder):
    write_mask(png_folder / "masks" / "case0.png", 255)  # a 0/255 mask: read as 0/1
    store = init_project(tmp_path / "proj", png_folder, task="segmentation", preset="smoke")
    labels = store.current_labels()
    assert "case0" in labels and not {"case1", "case2"} & set(labels)
    mask = np.asarray(Image.open(store.directory / labels["case0"].mask_path))
    np.testing.assert_array_equal(mask, rect_mask(1))


def test_render_export_import_masks(png_project, png_folder, tmp_path):
    store = png_project
    batch = query(store, strategy="random", budget=2)  # no labels yet: random, no training
    assert batch.round == 0 and len(batch.sample_ids) == 2
    samples = {s.id: s for s in store.samples()}
    for sid in ("case0", "case1"):  # the page shows an image in its own colours
        page = Image.open(io.BytesIO(render_png(store, samples[sid])))
        assert page.size == (W, H) and page.mode == ("RGB" if sid == "case1" else "L")
    out = export_batch(store, fmt="folder", out=tmp_path / "exp").path
    for sid in batch.sample_ids:
        src = store.sample_path(samples[sid])
        assert (out / "images" / f"{sid}{src.suffix}").read_bytes() == src.read_bytes()
        template = np.asarray(Image.open(out / "masks" / f"{sid}.png"))
        assert template.shape == (H, W) and not template.any()
    painted = tmp_path / "painted"
    for sid in batch.sample_ids:
        write_mask(painted / f"{sid}.png")
    report = import_labels(store, painted)
    assert report.n_written == 2 and store.counts()["batch"]["labelled"] == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.zeros((W, H), dtype=np.uint8)).save(bad / "case0.png")
    with pytest.raises(BadRows, match=r"mask shape \(16, 12\) does not match"):
        import_labels(store, bad, overwrite=True)


@pytest.mark.parametrize("case, culprit, message", [
    ("val without mask", "images/case3.png", "listed in val.list but has no mask"),
    ("mask size", "masks/case4.png", r"mask size 17x12 \(WxH\) differs"),
    ("orphan mask", "masks/other.png", "mask without an image"),
])
def test_init_errors_name_the_file(tmp_path, png_folder, case, culprit, message):
    if case == "val without mask":
        (png_folder / "masks" / "case3.png").unlink()
    elif case == "mask size":
        Image.fromarray(np.zeros((H, W + 1), dtype=np.uint8)).save(
            png_folder / "masks" / "case4.png")
    else:
        write_mask(png_folder / "masks" / "other.png")
    with pytest.raises(DataError, match=message) as info:
        init_project(tmp_path / "proj", png_folder, task="segmentation", preset="smoke")
    assert str(png_folder / culprit) in str(info.value)


def test_pool_order_matches_medactive_run(tmp_path):
    from medactive.data.segmentation.png import load_image_folder

    root = tmp_path / "imgs"
    for name in ("img10", "img2", "img3", "site2/img1", "val0", "test0"):
        write_image(root / "images" / f"{name}.png")
        write_mask(root / "masks" / f"{name}.png")
    (root / "val.list").write_text("val0\n")
    (root / "test.list").write_text("test0\n")
    store = init_project(tmp_path / "proj", root, task="segmentation", preset="smoke",
                         classes=["background", "fg"])
    assert store.pool_ids() == ["img2", "img3", "img10", "site2/img1"]
    assert store.pool_ids() == [s.id for s in load_image_folder(root).train]


@pytest.mark.slow
def test_query_trains_on_imported_masks(png_project, tmp_path):
    store = png_project
    batch = query(store, strategy="random", budget=2)
    painted = tmp_path / "painted"
    for sid in batch.sample_ids:
        write_mask(painted / f"{sid}.png")
    import_labels(store, painted)
    nxt = query(store, strategy="entropy", budget=1)
    assert nxt.round == 1 and len(nxt.sample_ids) == 1
    assert not set(batch.sample_ids) & set(nxt.sample_ids)
    metrics = store.models()[0]["metrics"]
    assert math.isfinite(metrics["val_dice_mean"]) and 0 <= metrics["val_dice_mean"] <= 1
