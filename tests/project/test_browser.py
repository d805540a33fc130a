"""End to end in real headless Chromium (Playwright + Debian's chromium): sign in, label five
images with number keys, SIGKILL and restart the server, find the five labels kept and the next
image offered; a second annotator never sees an image the first one holds.

Skips when Playwright or /usr/bin/chromium is missing (``.ci/run`` installs Debian's chromium).
Set ``MEDACTIVE_SCREENSHOT=path.png`` to also save the page's screenshot there (that is how
docs/annotation-screenshot.png was made).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project, query
from tests.project.browser import chromium, new_page, press_and_wait, served_in_chromium, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _write_xrays(folder: Path, n: int) -> None:
    """``n`` chest X-rays (28x28 PNG) of the embedded PneumoniaMNIST (CC BY 4.0)."""
    from medactive.data.classification.default import load_default_dataset

    folder.mkdir(parents=True)
    train = load_default_dataset().train
    for i in range(n):
        Image.fromarray(np.asarray(train.images[i])[..., 0]).save(folder / f"case{i:04d}.png")


def test_label_in_browser_restart_and_two_annotators(tmp_path):
    chromium()
    images = tmp_path / "images"
    _write_xrays(images, 16)
    proj = tmp_path / "proj"
    store = init_project(proj, images, classes=["normal", "pneumonia"], initial=10)
    query(store, strategy="random", budget=10)
    alice, bob = store.add_annotator("alice"), store.add_annotator("bob")
    store.close()

    with served_in_chromium(proj) as (server, browser):
        url = server.url
        page_a = new_page(browser, height=700)
        page_b = new_page(browser, width=1280, height=720)
        current = sign_in(page_a, url, alice)
        bob_id = sign_in(page_b, url, bob)
        assert bob_id != current

        # the window is adjustable: a narrow window changes the drawn pixels
        pixel = "Array.from(document.querySelector('#canvas').getContext('2d')" \
                ".getImageData(14, 14, 1, 1).data).slice(0, 3)"
        before = page_a.evaluate(pixel)
        page_a.fill("#width", "20")
        page_a.dispatch_event("#width", "input")
        assert page_a.evaluate(pixel) != before
        page_a.keyboard.press("r")
        page_a.click("#canvas")  # focus off the slider: its arrow keys move the slider

        labelled = {}
        keys = ["1", "2", "2", "1", "2"]
        for key in keys:
            assert current != page_b.text_content("#sample-id")  # never the same image
            labelled[current] = int(key) - 1
            current = press_and_wait(page_a, key, current)
        assert current not in labelled and current != bob_id
        assert "5 labelled" in page_a.text_content("#progress")

        # back shows the last labelled image with its label, forward returns
        previous = press_and_wait(page_a, "ArrowLeft", current)
        assert previous == list(labelled)[-1]
        chosen = page_a.text_content("#classes .chosen")
        assert chosen.strip().endswith(["normal", "pneumonia"][labelled[previous]])
        assert press_and_wait(page_a, "ArrowRight", previous) == current
        shot = tmp_path / "annotation.png"
        page_a.screenshot(path=str(shot))
        if os.environ.get("MEDACTIVE_SCREENSHOT"):
            page_a.screenshot(path=os.environ["MEDACTIVE_SCREENSHOT"])

        # the server dies hard and comes back
        server.kill()
        server.start()
        page_a.reload()  # the tab keeps its token (sessionStorage) and signs in again
        page_a.wait_for_function(
            "document.querySelector('#sample-id').textContent.length > 0")
        after = page_a.text_content("#sample-id")
        assert after == current  # the image alice was on is offered again
        assert after not in labelled
        assert "5 labelled" in page_a.text_content("#progress")
        # bob keeps his own image, and gets another one when he labels it
        page_b.reload()
        page_b.wait_for_function(
            "document.querySelector('#sample-id').textContent.length > 0")
        assert page_b.text_content("#sample-id") == bob_id
        bob_next = press_and_wait(page_b, "1", bob_id)
        assert bob_next not in labelled and bob_next != after

    store = ProjectStore(proj)
    assert store.integrity_check() == "ok"
    labels = store.current_labels()
    got = {sid: lab.value for sid, lab in labels.items() if lab.annotator == "alice"}
    assert got == labelled
    assert all(labels[s].source == "expert" for s in got)
    assert labels[bob_id].annotator == "bob"


def test_refused_label_waiting_and_sign_out_in_browser(tmp_path):
    """A label the server refuses (409) is shown as a message, the image stays and nothing is
    saved; with the rest of the batch leased to someone else the page says so and until when,
    not "done"; signing out gives the images back at once."""
    chromium()
    images = tmp_path / "images"
    _write_xrays(images, 6)
    proj = tmp_path / "proj"
    store = init_project(proj, images, classes=["normal", "pneumonia"], initial=2)
    query(store, strategy="random", budget=2)  # a batch of two
    alice, bob = store.add_annotator("alice"), store.add_annotator("bob")

    # the loopback name works as well as 127.0.0.1
    with served_in_chromium(proj, host="localhost") as (server, browser):
        url = server.url
        page_a = new_page(browser, width=1280, height=720)
        page_b = new_page(browser, width=1280, height=720)
        x = sign_in(page_a, url, alice)
        y = sign_in(page_b, url, bob)
        # alice's lease runs out (her laptop slept); bob, done with his image, gets hers
        with store.transaction() as tx:
            tx.execute("UPDATE queries SET lease_expires = 0 WHERE lease_annotator = 'alice'")
        assert press_and_wait(page_b, "1", y) == x

        page_a.keyboard.press("2")  # refused: bob holds it now
        page_a.wait_for_function(
            "document.querySelector('#message').textContent.includes('bob')")
        assert "error" in page_a.get_attribute("#message", "class")
        assert "not saved" in page_a.text_content("#message")
        assert page_a.text_content("#sample-id") == x
        assert x not in store.current_labels()

        page_a.keyboard.press("ArrowRight")  # nothing free: held, not done
        page_a.wait_for_function("!document.querySelector('#done').hidden")
        waiting = page_a.text_content("#done")
        assert "1 image(s)" in waiting and "held by other annotators until" in waiting

        page_b.click("#logout")  # bob signs out: his image is free at once
        page_b.wait_for_function("!document.querySelector('#login-view').hidden")
        page_a.keyboard.press("ArrowRight")
        page_a.wait_for_function(
            "x => document.querySelector('#sample-id').textContent === x", arg=x)
        page_a.keyboard.press("2")
        page_a.wait_for_function(
            "document.querySelector('#done').textContent.includes('Nothing left')")
    labels = store.current_labels()
    assert (labels[x].value, labels[x].annotator) == (1, "alice")
    assert (labels[y].value, labels[y].annotator) == (0, "bob")
