"""Drawing a segmentation mask in real headless Chromium: pick a class, drag over the slice, erase,
save; the stored mask holds exactly the painted class indices at the image's own resolution.

Skips like ``test_browser.py`` when Playwright or /usr/bin/chromium is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project, query
from tests.project.browser import (
    chromium,
    new_page,
    served_in_chromium,
    sign_in,
)
from tests.project.conftest import SEG_H, SEG_W

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _set_range(page, selector: str, value: int) -> None:
    page.fill(selector, str(value))
    page.dispatch_event(selector, "input")


def _screen(box: dict, row: int, col: int) -> tuple[float, float]:
    """Display coordinates of the centre of image pixel ``(row, col)`` of the 12 x 16 slice."""
    return (box["x"] + (col + 0.5) * box["width"] / SEG_W,
            box["y"] + (row + 0.5) * box["height"] / SEG_H)


@pytest.mark.parametrize("region_size", [None, 8], ids=["slices", "patches"])
def test_draw_and_save_mask(tmp_path, seg_folder, region_size):
    """Whole slices, and 8 x 8 patches (the page sends the whole slice, the server keeps the
    patch)."""
    chromium()
    proj = tmp_path / "proj"
    store = init_project(proj, seg_folder, task="segmentation", preset="smoke", initial=2,
                         region_size=region_size)
    query(store, strategy="random", budget=2)  # case0's masks are L_0: a pending batch of 2
    token = store.add_annotator("alice")
    n_classes = len(store.classes)  # background, outer, inner
    store.close()

    with served_in_chromium(proj) as (server, browser):
        page = new_page(browser, height=700)
        item_id = sign_in(page, server.url, token)
        patch = page.get_attribute("#canvas", "data-box")  # "x0,y0,x1,y1" or None
        assert page.is_visible("#draw-tools") and page.is_hidden("#classes .class")
        box = page.locator("#canvas").bounding_box()
        assert box["width"] > 4 * SEG_W  # shown enlarged: several screen pixels per pixel

        # class 1, 1-pixel brush: a drag along row 2 from column 3 to column 10
        page.keyboard.press("1")
        assert "outer" in page.text_content("#draw-classes .chosen")
        _set_range(page, "#brush", 1)
        page.mouse.move(*_screen(box, 2, 3))
        page.mouse.down()
        page.mouse.move(*_screen(box, 2, 10), steps=3)  # few events: gaps get filled
        page.mouse.up()
        # eraser (key 0) over column 10 of that row
        page.keyboard.press("0")
        page.mouse.click(*_screen(box, 2, 10))
        # class 2, 3-pixel brush, one click at (8, 12): the pixels within 1.5 of its centre
        page.keyboard.press("2")
        _set_range(page, "#brush", 3)
        page.mouse.click(*_screen(box, 8, 12))

        # the overlay shows the layer at the image's resolution, transparent elsewhere
        overlay = ("([x, y]) => Array.from(document.querySelector('#overlay')"
                   ".getContext('2d').getImageData(x, y, 1, 1).data)")
        assert page.evaluate(overlay, [5, 2])[3] == 255
        assert page.evaluate(overlay, [0, 0])[3] == 0

        page.click("#mask-save")
        page.wait_for_function(
            "old => { const t = document.querySelector('#sample-id').textContent;"
            " return t.length > 0 && t !== old; }", arg=item_id)
        assert page.text_content("#message") == ""

    store = ProjectStore(proj)
    label = store.current_labels()[item_id]
    assert label.annotator == "alice" and label.source == "expert"
    with Image.open(proj / label.mask_path) as img:
        assert img.mode == "L"
        mask = np.asarray(img)
    expected = np.zeros((SEG_H, SEG_W), dtype=np.uint8)
    expected[2, 3:10] = 1  # the stroke, less the erased column 10
    expected[7:10, 11:14] = 2  # 3 x 3: the corners are sqrt(2) < 1.5 from the centre
    assert mask.min() >= 0 and mask.max() < n_classes
    if region_size is not None:
        x0, y0, x1, y1 = (int(v) for v in patch.split(","))
        assert "@" in item_id
        expected = expected[y0:y1, x0:x1]
    np.testing.assert_array_equal(mask, expected)
