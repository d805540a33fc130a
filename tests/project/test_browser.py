"""End to end in real headless Chromium (Playwright + Debian's chromium): sign in, label five
images with number keys, SIGKILL and restart the server, find the five labels kept and the next
image offered; a second annotator never sees an image the first one holds.

Skips when Playwright or /usr/bin/chromium is missing (``.ci/run`` installs Debian's chromium).
Set ``MEDACTIVE_SCREENSHOT=path.png`` to also save the page's screenshot there (that is how
docs/annotation-screenshot.png was made).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project, query

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SRC = Path(__file__).resolve().parents[2] / "src"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    return sync_playwright


def _write_xrays(folder: Path, n: int) -> None:
    """``n`` chest X-rays (28x28 PNG) of the embedded PneumoniaMNIST (CC BY 4.0)."""
    from medactive.data.classification.default import load_default_dataset

    folder.mkdir(parents=True)
    train = load_default_dataset().train
    for i in range(n):
        Image.fromarray(np.asarray(train.images[i])[..., 0]).save(folder / f"case{i:04d}.png")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(proj: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "medactive.cli", "serve", str(proj),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start")


def _sign_in(page, url: str, token: str) -> str:
    page.goto(url)
    page.fill("#token", token)
    page.click("#login-button")
    page.wait_for_function("document.querySelector('#sample-id').textContent.length > 0")
    return page.text_content("#sample-id")


def _press_and_wait(page, key: str, old_id: str) -> str:
    page.keyboard.press(key)
    page.wait_for_function(
        "old => { const t = document.querySelector('#sample-id').textContent;"
        " return t.length > 0 && t !== old; }", arg=old_id)
    return page.text_content("#sample-id")


def test_label_in_browser_restart_and_two_annotators(tmp_path):
    sync_playwright = _chromium()
    images = tmp_path / "images"
    _write_xrays(images, 16)
    proj = tmp_path / "proj"
    store = init_project(proj, images, classes=["normal", "pneumonia"], initial=10)
    query(store, strategy="random", budget=10)
    alice, bob = store.add_annotator("alice"), store.add_annotator("bob")
    store.close()

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    server = _start_server(proj, port)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            # bypass_csp: Playwright's wait_for_function evaluates strings, which the page's
            # strict Content-Security-Policy (no eval) would refuse
            page_a = browser.new_context(viewport={"width": 1100, "height": 700},
                                         bypass_csp=True).new_page()
            page_b = browser.new_context(bypass_csp=True).new_page()
            current = _sign_in(page_a, url, alice)
            bob_id = _sign_in(page_b, url, bob)
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
                current = _press_and_wait(page_a, key, current)
            assert current not in labelled and current != bob_id
            assert "5 labelled" in page_a.text_content("#progress")

            # back shows the last labelled image with its label, forward returns
            previous = _press_and_wait(page_a, "ArrowLeft", current)
            assert previous == list(labelled)[-1]
            chosen = page_a.text_content("#classes .chosen")
            assert chosen.strip().endswith(["normal", "pneumonia"][labelled[previous]])
            assert _press_and_wait(page_a, "ArrowRight", previous) == current
            shot = tmp_path / "annotation.png"
            page_a.screenshot(path=str(shot))
            if os.environ.get("MEDACTIVE_SCREENSHOT"):
                page_a.screenshot(path=os.environ["MEDACTIVE_SCREENSHOT"])

            # the server dies hard and comes back
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
            server = _start_server(proj, port)
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
            bob_next = _press_and_wait(page_b, "1", bob_id)
            assert bob_next not in labelled and bob_next != after
            browser.close()
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)

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
    sync_playwright = _chromium()
    images = tmp_path / "images"
    _write_xrays(images, 6)
    proj = tmp_path / "proj"
    store = init_project(proj, images, classes=["normal", "pneumonia"], initial=2)
    query(store, strategy="random", budget=2)  # a batch of two
    alice, bob = store.add_annotator("alice"), store.add_annotator("bob")

    port = _free_port()
    url = f"http://localhost:{port}/"  # the loopback name works as well as 127.0.0.1
    server = _start_server(proj, port)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page_a = browser.new_context(bypass_csp=True).new_page()
            page_b = browser.new_context(bypass_csp=True).new_page()
            x = _sign_in(page_a, url, alice)
            y = _sign_in(page_b, url, bob)
            # alice's lease runs out (her laptop slept); bob, done with his image, gets hers
            with store.transaction() as tx:
                tx.execute("UPDATE queries SET lease_expires = 0 WHERE lease_annotator = 'alice'")
            assert _press_and_wait(page_b, "1", y) == x

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
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    labels = store.current_labels()
    assert (labels[x].value, labels[x].annotator) == (1, "alice")
    assert (labels[y].value, labels[y].annotator) == (0, "bob")
