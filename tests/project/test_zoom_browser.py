"""Zoom and pan on the real page (headless Chromium): the wheel, +/-, F, I/J/K/L and drags
change the view of classification and segmentation items, and a stroke drawn on a zoomed,
panned image lands on the image pixel under the pointer (the stored mask is checked pixel by
pixel).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project, query
from tests.project.browser import new_page, served_in_chromium, shot, sign_in
from tests.project.conftest import SEG_H, SEG_W

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _screen(box: dict, row: int, col: int, *, h: int, w: int) -> tuple[float, float]:
    """Screen coordinates of the centre of image pixel ``(row, col)`` of an ``h x w`` image
    shown in ``box`` (the canvas' box after zoom and pan)."""
    return box["x"] + (col + 0.5) * box["width"] / w, box["y"] + (row + 0.5) * box["height"] / h


def _inside(view: dict, x: float, y: float) -> bool:
    return view["x"] < x < view["x"] + view["width"] and view["y"] < y < view["y"] + view["height"]


def test_zoomed_drawing_lands_on_the_image_pixel(tmp_path, seg_folder):
    proj = tmp_path / "proj"
    store = init_project(proj, seg_folder, task="segmentation", preset="smoke", initial=2)
    query(store, strategy="random", budget=2)
    token = store.add_annotator("alice")
    store.close()

    with served_in_chromium(proj) as (server, browser):
        page = new_page(browser, height=700)
        item_id = sign_in(page, server.url, token)
        canvas, viewport = page.locator("#canvas"), page.locator("#viewport")
        fit, view = canvas.bounding_box(), viewport.bounding_box()
        assert fit["width"] == pytest.approx(view["width"], abs=1)

        # wheel up over pixel (6, 8): zoomed in about that point, which stays under the pointer
        x, y = _screen(fit, 6, 8, h=SEG_H, w=SEG_W)
        page.mouse.move(x, y)
        page.mouse.wheel(0, -400)  # zoom e^0.8 = 2.23
        page.wait_for_function("document.querySelector('#zoom-level').textContent !== '100 %'")
        zoomed = canvas.bounding_box()
        assert zoomed["width"] == pytest.approx(fit["width"] * np.exp(0.8), rel=1e-3)
        # (the pointer sits on whole CSS pixels: the point kept is within a pixel of (x, y))
        assert _screen(zoomed, 6, 8, h=SEG_H, w=SEG_W) == pytest.approx((x, y), abs=1.0)
        col = (x - zoomed["x"]) * SEG_W / zoomed["width"]
        row = (y - zoomed["y"]) * SEG_H / zoomed["height"]
        assert (int(row), int(col)) == (6, 8)
        assert viewport.bounding_box() == pytest.approx(view)  # the layout does not grow

        # pan right with L, then draw class 2 with a 1-pixel brush on pixel (4, 11)
        page.keyboard.press("l")
        panned = canvas.bounding_box()
        assert panned["x"] == pytest.approx(zoomed["x"] - 0.2 * fit["width"], abs=0.5)
        page.keyboard.press("2")
        page.fill("#brush", "1")
        page.dispatch_event("#brush", "input")
        target = _screen(panned, 4, 11, h=SEG_H, w=SEG_W)
        assert _inside(view, *target)
        page.mouse.click(*target)

        # Space + drag pans instead of drawing; then class 1 on pixel (7, 9)
        page.keyboard.down("Space")
        page.mouse.move(view["x"] + 100, view["y"] + 100)
        page.mouse.down()
        page.mouse.move(view["x"] + 140, view["y"] + 130, steps=4)
        page.mouse.up()
        page.keyboard.up("Space")
        dragged = canvas.bounding_box()
        assert (dragged["x"] - panned["x"], dragged["y"] - panned["y"]) == pytest.approx(
            (40, 30), abs=0.5)
        page.keyboard.press("1")
        target = _screen(dragged, 7, 9, h=SEG_H, w=SEG_W)
        assert _inside(view, *target)
        page.mouse.click(*target)
        shot(page, "zoomed-drawing.png")

        page.keyboard.press("f")  # fit: back to the whole image
        assert canvas.bounding_box() == pytest.approx(fit, abs=0.5)
        page.click("#mask-save")
        page.wait_for_function(
            "old => { const t = document.querySelector('#sample-id').textContent;"
            " return t.length > 0 && t !== old; }", arg=item_id)
        assert page.text_content("#message") == ""

    store = ProjectStore(proj)
    label = store.current_labels()[item_id]
    with Image.open(proj / label.mask_path) as img:
        mask = np.asarray(img)
    expected = np.zeros((SEG_H, SEG_W), dtype=np.uint8)
    expected[4, 11] = 2
    expected[7, 9] = 1
    np.testing.assert_array_equal(mask, expected)
    assert (label.edits, label.pixels) == (2, 2)  # two strokes (the pan is none), 2 pixels
    assert label.active_ms is not None and label.active_ms >= 0


def test_classification_zoom_pan_and_fit(project):
    query(project, strategy="random", budget=4)
    token = project.add_annotator("alice")
    project.close()
    with served_in_chromium(project.directory) as (server, browser):
        page = new_page(browser)
        first = sign_in(page, server.url, token)
        canvas = page.locator("#canvas")
        fit = canvas.bounding_box()
        page.keyboard.press("+")
        page.keyboard.press("+")
        zoomed = canvas.bounding_box()
        assert zoomed["width"] == pytest.approx(fit["width"] * 1.25 ** 2, rel=1e-3)
        # about the centre: the centre pixel stays in the middle
        assert zoomed["x"] + zoomed["width"] / 2 == pytest.approx(fit["x"] + fit["width"] / 2,
                                                                   abs=0.5)
        # a plain drag pans (nothing to draw in classification) and labels nothing
        cx, cy = fit["x"] + fit["width"] / 2, fit["y"] + fit["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + 50, cy + 20, steps=3)
        page.mouse.up()
        dragged = canvas.bounding_box()
        assert (dragged["x"] - zoomed["x"], dragged["y"] - zoomed["y"]) == pytest.approx(
            (50, 20), abs=0.5)
        # the view never leaves the image: a big drag stops at the image's edge
        page.mouse.down()
        page.mouse.move(cx + 2000, cy, steps=2)
        page.mouse.up()
        assert canvas.bounding_box()["x"] == pytest.approx(fit["x"], abs=0.5)
        page.keyboard.press("-")
        assert canvas.bounding_box()["width"] == pytest.approx(fit["width"] * 1.25, rel=1e-3)
        page.keyboard.press("F")
        assert canvas.bounding_box() == pytest.approx(fit, abs=0.5)
        assert page.text_content("#sample-id") == first
        assert page.text_content("#zoom-level") == "100 %"
