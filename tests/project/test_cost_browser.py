"""Annotation cost on the real page (headless Chromium): the active time stored with a label
leaves out the time the page was hidden and the idle part of a long pause.

The page's clock is replaced before it loads (``window.__medactiveClock``, which ``app.js``
reads instead of ``performance.now``), and the page's visibility is switched by hand (a
``document.visibilityState`` getter and a ``visibilitychange`` event), so the test sets the
time: nothing depends on how fast the machine is.
"""

from __future__ import annotations

import pytest

from medactive.project.store import ProjectStore
from medactive.project.workflow import query
from tests.project.browser import new_page, press_and_wait, served_in_chromium, shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FAKE_CLOCK = """
window.__medactiveClock = { t: 1000, now() { return this.t; } };
window.__hidden = false;
Object.defineProperty(document, "visibilityState",
                      { get: () => (window.__hidden ? "hidden" : "visible"), configurable: true });
"""


def _at(page, seconds: float) -> None:
    page.evaluate("t => { window.__medactiveClock.t = t; }", 1000 + 1000 * seconds)


def _visible(page, visible: bool) -> None:
    page.evaluate("v => { window.__hidden = !v; document.dispatchEvent("
                  "new Event('visibilitychange')); }", visible)


def test_hidden_and_idle_time_is_not_counted(project):
    query(project, strategy="random", budget=4)
    token = project.add_annotator("alice")
    project.close()
    with served_in_chromium(project.directory) as (server, browser):
        page = new_page(browser)
        page.add_init_script(FAKE_CLOCK)
        first = sign_in(page, server.url, token)  # shown at t = 0 s
        _at(page, 5)
        _visible(page, False)  # 5 s active, then another tab for 300 s
        _at(page, 305)
        _visible(page, True)
        _at(page, 307)
        page.mouse.move(200, 200)  # an input at 307 s, then 200 s without any
        _at(page, 507)
        second = press_and_wait(page, "2", first)  # label b at 507 s on screen
        # the next item's clock starts at its display: 12 s, one key
        _at(page, 519)
        press_and_wait(page, "1", second)
        shot(page, "cost-page.png")

    store = ProjectStore(project.directory)
    labels = store.current_labels()
    # 5 s + 2 s + the first 60 s of the 200 s pause; on screen 507 s
    assert labels[first].active_ms == 67_000
    assert labels[second].active_ms == 12_000
    assert labels[first].value == 1 and labels[first].edits is None
