"""Adjudicating mask disagreements on the real page (headless Chromium): two readers draw
different masks on a tiny 8x8 segmentation project; the adjudicator sees each reader's mask
(names, pairwise Dice), keeps alice's on one item and edits bob's on the other; ``project
status --json`` shows both adjudicated and the stored training masks are what was chosen.

Skips like ``test_browser.py`` when Playwright or /usr/bin/chromium is missing. Set
``MEDACTIVE_SCREENSHOT_DIR=docs/img`` to save docs/ANNOTATION.md's adjudication-mask.png.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from medactive.cli import main
from medactive.project.readings import load_mask, readings, set_adjudicator, training_labels
from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project, query
from tests.project.browser import new_page, served_in_chromium, shot, sign_in
from tests.project.test_mask_adjudication import N, write_png_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# what each reader draws on the first and the second item: (row, col) pixels of class 1 (the
# bright lesion is rows 2-5, columns 2-5)
DRAWN = {"alice": [[(2, 2), (2, 3), (3, 2), (3, 3)], [(4, 4), (4, 5)]],
         "bob": [[(2, 2)], [(5, 5)]]}
ADDED = (5, 4)  # the adjudicator's correction of bob's mask on the second item


def _mask(pixels) -> np.ndarray:
    m = np.zeros((N, N), np.uint8)
    for r, c in pixels:
        m[r, c] = 1
    return m


def _click(page, pixels) -> None:
    """Click the centre of each image pixel ``(row, col)`` with the 1-pixel brush."""
    page.fill("#brush", "1")
    page.dispatch_event("#brush", "input")
    box = page.locator("#canvas").bounding_box()
    for r, c in pixels:
        page.mouse.click(box["x"] + (c + 0.5) * box["width"] / N,
                         box["y"] + (r + 0.5) * box["height"] / N)


def _wait_moved_on(page, old_id: str) -> None:
    """Wait for another item, or the end screen."""
    page.wait_for_function(
        "old => { const t = document.querySelector('#sample-id').textContent;"
        " return (t.length > 0 && t !== old) || !document.querySelector('#done').hidden; }",
        arg=old_id)


def test_readers_draw_the_adjudicator_keeps_one_and_edits_one(tmp_path, capsys):
    folder = write_png_folder(tmp_path / "lesions")
    proj = tmp_path / "proj"
    store = init_project(proj, folder, task="segmentation", preset="smoke", initial=2,
                         readers=2)
    batch = query(store, strategy="random", budget=2).sample_ids
    tokens = {n: store.add_annotator(n) for n in ("alice", "bob", "dana")}
    set_adjudicator(store, "dana")
    store.close()

    with served_in_chromium(proj) as (server, browser):
        drawn: dict[str, dict[str, np.ndarray]] = {}
        for who in ("alice", "bob"):
            page = new_page(browser)
            item = sign_in(page, server.url, tokens[who])
            for pixels in DRAWN[who]:
                _click(page, pixels)
                drawn.setdefault(item, {})[who] = _mask(pixels)
                page.click("#mask-save")
                _wait_moved_on(page, item)
                item = page.text_content("#sample-id")
            page.wait_for_selector("#done", state="visible")
        assert sorted(drawn) == sorted(batch)

        page = new_page(browser)
        first = sign_in(page, server.url, tokens["dana"])
        page.wait_for_selector("#mask-readings", state="visible")
        assert page.locator("#mask-readings li .reader").all_text_contents() == ["alice", "bob"]
        a, b = drawn[first]["alice"], drawn[first]["bob"]
        dice = 2 * int((a & b).sum()) / int(a.sum() + b.sum())
        assert page.text_content("#adj-dice") == f"Dice alice–bob {dice:.3f}"
        page.click("#mask-readings button.show-mask[data-source='alice']")
        page.wait_for_function("document.querySelector('#adj-source').textContent"
                               ".includes('alice')")
        shot(page, "adjudication-mask.png")
        page.click("#mask-readings button.keep-mask[data-reader='alice']")
        _wait_moved_on(page, first)
        second = page.text_content("#sample-id")
        assert {first, second} == set(batch)

        page.wait_for_function("document.querySelector('#adj-source').textContent"
                               ".includes('vote')")  # the layer starts as the readers' vote
        page.click("#mask-readings button.show-mask[data-source='bob']")
        page.wait_for_function("document.querySelector('#adj-source').textContent"
                               ".includes('bob')")
        _click(page, [ADDED])
        page.keyboard.press("Enter")  # Save mask
        page.wait_for_function("!document.querySelector('#done').hidden && document"
                               ".querySelector('#done').textContent.includes('No disagreement')")
        assert page.text_content("#message") == ""

    assert main(["project", "status", str(proj), "--json"]) == 0
    agreement = json.loads(capsys.readouterr().out)["agreement"]
    assert agreement["open_disagreements"] == 0
    decided = {d["sample_id"]: d["adjudicated"] for d in agreement["disagreements"]}
    assert {s: (d["by"], d["method"], d["reader"]) for s, d in decided.items()} == {
        first: ("dana", "reader", "alice"), second: ("dana", "edited", "bob")}

    store = ProjectStore(proj)
    made = training_labels(store)
    assert made[first].rule == made[second].rule == "adjudicated"
    np.testing.assert_array_equal(load_mask(store, made[first].mask_path), drawn[first]["alice"])
    np.testing.assert_array_equal(load_mask(store, made[second].mask_path),
                                  drawn[second]["bob"] | _mask([ADDED]))
    for sid, by_reader in drawn.items():  # every reading as the reader drew it
        got = {r.annotator: load_mask(store, r.mask_path) for r in readings(store)[sid]}
        assert sorted(got) == ["alice", "bob"]
        for who, m in by_reader.items():
            np.testing.assert_array_equal(got[who], m)
    store.close()
