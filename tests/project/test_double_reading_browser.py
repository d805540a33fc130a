"""Double reading in real headless Chromium (``project init --readers 2``): two annotators both
label the same item and a third never sees it; ``project status`` reports the kappa that
scikit-learn's ``cohen_kappa_score`` gives on the same labels; an adjudicator's page shows each
reader's label, the adjudicator's key replaces the training label and both readings stay.

Skips like ``test_browser.py`` when Playwright or /usr/bin/chromium is missing. Set
``MEDACTIVE_SCREENSHOT_DIR=docs/img`` to save the screenshot of docs/ANNOTATION.md there.
"""

from __future__ import annotations

import pytest

from medactive.project.readings import readings, set_adjudicator, training_labels
from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project, labeled_state, query, status
from tests.project.browser import (
    chromium,
    new_page,
    press_and_wait,
    served_in_chromium,
    shot,
    sign_in,
)
from tests.project.conftest import write_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _press_until_done(page, key: str, text: str) -> None:
    """Press ``key`` on the last item offered and wait for the end screen saying ``text``."""
    page.keyboard.press(key)
    page.wait_for_function("t => !document.querySelector('#done').hidden && "
                           "document.querySelector('#done').textContent.includes(t)", arg=text)


def test_two_readers_a_third_never_sees_it_kappa_and_adjudication(tmp_path):
    from sklearn.metrics import cohen_kappa_score

    chromium()
    write_folder(tmp_path / "images", 10, size=28, subfolder_every=0)
    proj = tmp_path / "proj"
    store = init_project(proj, tmp_path / "images", classes=["benign", "malignant"],
                         preset="smoke", initial=4, readers=2)
    x, y, z, w = query(store, strategy="random", budget=4).sample_ids
    tokens = {n: store.add_annotator(n) for n in ("alice", "bob", "carol", "dana")}
    set_adjudicator(store, "dana")
    store.close()

    with served_in_chromium(proj) as (server, browser):
        pages, seen = {}, {}
        for who in ("alice", "bob", "carol"):
            pages[who] = new_page(browser)
            seen[who] = [sign_in(pages[who], server.url, tokens[who])]
        assert seen == {"alice": [x], "bob": [x], "carol": [y]}  # x is full: carol gets y

        def label(who: str, key: str) -> None:
            seen[who].append(press_and_wait(pages[who], key, seen[who][-1]))

        label("alice", "1")  # x: benign -> y (carol holds one of its two places)
        label("bob", "2")  # x: malignant -> z (y is full)
        label("carol", "2")  # y -> z
        label("alice", "2")  # y -> w (z is full)
        label("bob", "1")  # z -> w
        _press_until_done(pages["carol"], "1", "held by other annotators")  # z; w is full
        _press_until_done(pages["alice"], "2", "Nothing left")  # w
        _press_until_done(pages["bob"], "2", "Nothing left")  # w
        assert seen == {"alice": [x, y, w], "bob": [x, z, w], "carol": [y, z]}

        store = ProjectStore(proj)
        by_sample = readings(store)
        assert {s: [r.annotator for r in rs] for s, rs in by_sample.items()} == {
            x: ["alice", "bob"], y: ["carol", "alice"], z: ["bob", "carol"],
            w: ["alice", "bob"]}
        assert all(r.annotator != "carol" for s in (x, w) for r in store.label_history(s))
        first = [by_sample[s][0].value for s in (x, y, z, w)]
        second = [by_sample[s][1].value for s in (x, y, z, w)]
        agreement = status(store)["agreement"]
        assert agreement["overall"]["kappa"] == pytest.approx(cohen_kappa_score(first, second))
        assert [d["sample_id"] for d in agreement["disagreements"]] == [x]
        assert x not in labeled_state(store).labels  # a tie: not trained on until decided

        page = new_page(browser)
        assert sign_in(page, server.url, tokens["dana"]) == x
        page.wait_for_selector("#readings", state="visible")
        assert page.locator("#readings-list li").all_text_contents() == [
            "alice: benign", "bob: malignant"]
        for value in ("0", "1"):
            assert "read" in page.get_attribute(f"#classes .class[data-value='{value}']",
                                                "class")
        shot(page, "adjudication.png")
        _press_until_done(page, "2", "No disagreement is waiting")

    made = training_labels(store)[x]
    assert (made.rule, made.value) == ("adjudicated", 1)
    assert labeled_state(store).labels[x] == 1
    assert [(r.annotator, r.value) for r in readings(store)[x]] == [("alice", 0), ("bob", 1)]
    assert status(store)["agreement"]["open_disagreements"] == 0
    store.close()
