"""Model-assisted labelling in real headless Chromium: the round's model's proposal is shown with
why the item was chosen, Enter accepts it and the label is stored as "accepted"; another key
stores "edited"; a segmentation item's drawing layer starts as the predicted mask, and a mask
corrected on it and saved is "edited", one saved as it is "accepted".

Skips like ``test_browser.py`` when Playwright or /usr/bin/chromium is missing. Set
``MEDACTIVE_SCREENSHOT_DIR=docs/img`` to save the screenshots of docs/ANNOTATION.md there.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medactive.calibration import apply_temperature
from medactive.project.importer import import_labels
from medactive.project.label_studio import _model_predictions
from medactive.project.signals import latest_temperature
from medactive.project.store import ProjectStore
from medactive.project.volumes import mask_png
from medactive.project.workflow import init_project, query, train
from tests.project.browser import (
    chromium,
    new_page,
    press_and_wait,
    served_in_chromium,
    shot,
    sign_in,
)
from tests.project.conftest import SEG_H, SEG_W, seg_volume, write_csv, write_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _open(browser, url: str, token: str):
    page = new_page(browser)
    return page, sign_in(page, url, token)


def test_classification_proposal_accepted_with_enter_and_edited(tmp_path):
    chromium()
    truth = write_folder(tmp_path / "images", 16, size=28)
    proj = tmp_path / "proj"
    store = init_project(proj, tmp_path / "images", classes=["normal", "pneumonia"],
                         preset="smoke", initial=6)
    batch0 = query(store, strategy="random", budget=6).sample_ids
    import_labels(store, write_csv(tmp_path / "l.csv",
                                   [(i, ["normal", "pneumonia"][truth[i]]) for i in batch0]))
    train(store)
    batch1 = query(store, strategy="margin", budget=3).sample_ids
    preds = _model_predictions(store, list(batch1), device="cpu")["values"]
    temperature = latest_temperature(store)
    token = store.add_annotator("alice")
    store.close()

    with served_in_chromium(proj) as (server, browser):
        page, first = _open(browser, server.url, token)
        assert first == batch1[0]
        page.wait_for_selector("#proposal", state="visible")
        best = int(np.argmax(preds[first]))
        name = ["normal", "pneumonia"][best]
        assert page.text_content("#proposal-class") == name
        shown = apply_temperature(np.log(preds[first])[None], temperature)[0][best]
        assert page.text_content("#proposal-p") == f"(probability {shown:.2f})"
        assert "proposed" in page.get_attribute(f"#classes .class[data-value='{best}']",
                                                "class")
        assert page.text_content("#why").startswith("Chosen by margin: rank 1 of round 1")
        shot(page, "assisted-classification.png")
        second = press_and_wait(page, "Enter", first)  # accept: one key
        other = 1 - int(np.argmax(preds[second]))
        press_and_wait(page, str(other + 1), second)  # the other class
    store = ProjectStore(proj)
    labels = store.current_labels_for([first, second])
    assert labels[first].value == best and labels[first].provenance == "accepted"
    assert labels[second].value == other and labels[second].provenance == "edited"
    imported = store.current_labels_for([batch0[0]])[batch0[0]]
    assert imported.provenance is None  # imports carry none
    store.close()


def _truth_mask(sid: str) -> np.ndarray:
    vol, k = sid.rsplit("/", 1)
    return seg_volume(int(vol.removeprefix("case")))[1][int(k.removeprefix("slice_"))]


def _layer(page) -> np.ndarray:
    """The page's drawing layer as ``[H, W]`` class indices (what Save would send)."""
    values = page.evaluate("() => Array.from(state.mask.data)")
    return np.asarray(values, dtype=np.uint8).reshape(SEG_H, SEG_W)


def test_segmentation_proposed_mask_prefilled_saved_and_edited(tmp_path, seg_folder):
    chromium()
    proj = tmp_path / "proj"
    store = init_project(proj, seg_folder, task="segmentation", preset="smoke", initial=3)
    batch0 = query(store, strategy="random", budget=3).sample_ids
    folder = tmp_path / "m"
    for sid in batch0:
        path = folder / f"{sid}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_truth_mask(sid)).save(path)
    import_labels(store, folder)
    train(store)
    batch1 = query(store, strategy="entropy", budget=2).sample_ids
    preds = _model_predictions(store, list(batch1), device="cpu")["values"]
    token = store.add_annotator("alice")
    store.close()

    with served_in_chromium(proj) as (server, browser):
        page, first = _open(browser, server.url, token)
        page.wait_for_selector("#proposal", state="visible")
        assert np.array_equal(_layer(page), preds[first])  # pre-filled, pixel for pixel
        shot(page, "assisted-segmentation.png")
        # correct it: class 2 (1-pixel brush) at pixel (0, 0), then save
        page.keyboard.press("2")
        page.fill("#brush", "1")
        page.dispatch_event("#brush", "input")
        box = page.locator("#canvas").bounding_box()
        page.mouse.click(box["x"] + 0.5 * box["width"] / SEG_W,
                         box["y"] + 0.5 * box["height"] / SEG_H)
        edited = preds[first].copy()
        edited[0, 0] = 2
        assert np.array_equal(_layer(page), edited)
        page.click("#mask-save")
        page.wait_for_function(
            "old => document.querySelector('#sample-id').textContent !== old", arg=first)
        second = page.text_content("#sample-id")
        page.wait_for_selector("#proposal", state="visible")
        assert np.array_equal(_layer(page), preds[second])
        page.keyboard.press("Enter")  # the proposed mask as it is
        page.wait_for_function("document.querySelector('#done').hidden === false")
    store = ProjectStore(proj)
    labels = store.current_labels_for([first, second])
    assert labels[first].provenance == "edited"
    assert labels[first].mask_path == mask_png(edited)[0]
    assert labels[second].provenance == "accepted"
    assert labels[second].mask_path == mask_png(preds[second])[0]
    store.close()
