"""Measured annotation cost (issue 13 part 3): the server validates and stores each page label's
active time, and a mask's edits and labelled pixels; ``cost_report`` turns them into labels per
active hour per annotator and the learning curve against expert hours; ``project report`` writes
the PNG and CSVs; ``project status`` shows it (text and JSON).

Hand-made stores: labels written through the store with known times, models with known metrics.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import warnings

import numpy as np
import pytest
from PIL import Image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from medactive.cli import main
from medactive.project.cost import (
    MAX_ACTIVE_MS,
    CostError,
    cost_report,
    format_cost,
    parse_cost,
    write_report,
)
from medactive.project.server import create_app
from medactive.project.store import SCHEMA_VERSION, NewLabel, ProjectStore
from medactive.project.workflow import init_project, query


def _client(store: ProjectStore, name: str = "alice"):
    token = store.add_annotator(name)
    return TestClient(create_app(store.directory)), {"Authorization": f"Bearer {token}"}


def _n_labels(store: ProjectStore) -> int:
    return int(store.execute("SELECT COUNT(*) FROM labels")[0][0])


# -- the server: validation and storage ---------------------------------------------------------
def test_page_label_stores_its_active_time(project):
    query(project, strategy="random", budget=4)
    client, h = _client(project)
    assert client.get("/static/timing.js").status_code == 200
    assert client.get("/api/project", headers=h).json()["idle_seconds"] == 60
    item = client.post("/api/next", headers=h).json()
    r = client.post("/api/label", headers=h,
                    json={"key": item["key"], "value": 1, "active_ms": 12345.4})
    assert r.status_code == 200, r.text
    lab = project.current_labels_for([item["id"]])[item["id"]]
    assert (lab.active_ms, lab.edits, lab.pixels) == (12345, None, None)
    # a label sent without a time (a script, an older page) is stored as not measured
    item2 = client.post("/api/next", headers=h).json()
    assert client.post("/api/label", headers=h,
                       json={"key": item2["key"], "value": 0}).status_code == 200
    assert project.current_labels_for([item2["id"]])[item2["id"]].active_ms is None


@pytest.mark.parametrize("raw,why", [
    ("-1", "active_ms must be >= 0"),
    ("Infinity", "active_ms must be a finite number"),
    ("NaN", "active_ms must be a finite number"),
    ('"soon"', "active_ms must be a number"),
    ("true", "active_ms must be a number"),
    ("[1]", "active_ms must be a number"),
    (str(MAX_ACTIVE_MS + 1), f"active_ms must be <= {MAX_ACTIVE_MS}"),
])
def test_bad_active_time_is_refused_and_nothing_stored(project, raw, why):
    query(project, strategy="random", budget=4)
    client, h = _client(project)
    item = client.post("/api/next", headers=h).json()
    body = f'{{"key": {item["key"]}, "value": 0, "active_ms": {raw}}}'
    r = client.post("/api/label", headers={**h, "Content-Type": "application/json"},
                    content=body)
    assert r.status_code == 422
    assert why in r.json()["detail"]
    assert _n_labels(project) == 0
    # classification labels have no edits
    r = client.post("/api/label", headers=h,
                    json={"key": item["key"], "value": 0, "active_ms": 5, "edits": 2})
    assert r.status_code == 422 and "edits" in r.json()["detail"]
    assert _n_labels(project) == 0


def test_parse_cost_by_hand():
    assert parse_cost(None, None, mask=False) .active_ms is None
    assert parse_cost("2500.6", "3", mask=True) == parse_cost(2501, 3, mask=True)
    assert parse_cost(0, 0, mask=True).edits == 0
    for active, edits in ((1, -1), (1, 1.5), (1, "x"), (1, 10**9)):
        with pytest.raises(CostError, match="edits"):
            parse_cost(active, edits, mask=True)


@pytest.fixture
def seg_batch(tmp_path, seg_folder):
    """A segmentation project (12 x 16 slices) with case1's three slices as a pending batch
    (stored directly: no training)."""
    store = init_project(tmp_path / "seg", seg_folder, task="segmentation", preset="smoke",
                         initial=2)
    ids = [sid for sid in store.pool_ids() if sid.startswith("case1/")]
    with store.transaction() as tx:
        store.add_batch(0, "random", ids, [None] * len(ids), budget=len(ids), tx=tx)
    return store


def _png(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_mask_stores_time_edits_and_labelled_pixels(seg_batch):
    client, h = _client(seg_batch)
    item = client.post("/api/next", headers=h).json()
    mask = np.zeros((12, 16), dtype=np.uint8)
    mask[2, 3:10] = 1  # 7 pixels
    mask[7:10, 11:14] = 2  # 9 pixels
    r = client.post(f"/api/mask/{item['key']}?active_ms=4000&edits=3", headers=h,
                    content=_png(mask))
    assert r.status_code == 200, r.text
    lab = seg_batch.current_labels_for([item["id"]])[item["id"]]
    # pixels: the saved mask's non-background pixels, counted by the server
    assert (lab.active_ms, lab.edits, lab.pixels) == (4000, 3, 16)

    item2 = client.post("/api/next", headers=h).json()
    for query_string in ("active_ms=-5", "active_ms=inf", "active_ms=nan", "edits=-1",
                         "edits=2.5", "active_ms=abc"):
        r = client.post(f"/api/mask/{item2['key']}?{query_string}", headers=h,
                        content=_png(mask))
        assert r.status_code == 422, query_string
        assert query_string.split("=")[0] in r.json()["detail"]
    assert seg_batch.current_labels_for([item2["id"]]) == {}


def test_old_store_gains_the_cost_columns(project):
    """A store of schema 4 (before the cost columns): opening it adds them as NULL."""
    query(project, strategy="random", budget=4)
    sid = project.batch(0)[0].sample_id
    project.add_label(NewLabel(sid, value=0), annotator="alice", source="import")
    project.close()
    con = sqlite3.connect(project.directory / "project.db")
    for column in ("active_ms", "edits", "pixels"):
        con.execute(f"ALTER TABLE labels DROP COLUMN {column}")
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    store = ProjectStore(project.directory)
    assert store.get_meta("schema_version") == SCHEMA_VERSION
    row = store.execute("SELECT * FROM labels")[0]
    assert (row["active_ms"], row["edits"], row["pixels"]) == (None, None, None)
    assert store.integrity_check() == "ok"


# -- accounting on a hand-made store ------------------------------------------------------------
def _hand_made(project) -> ProjectStore:
    """Round 0: alice labels 3 images in 30 + 40 + 20 s (1 accepted, 1 edited, 1 scratch), bob
    2 in 100 + 80 s and 1 unmeasured; a model on round 0 (6 labels, val AUC 0.7). Round 1:
    alice 2 more in 45 + 45 s; its model on 8 labels, val AUC 0.8."""
    store = project
    pool = store.pool_ids()
    with store.transaction() as tx:
        store.add_batch(0, "random", pool[:6], [None] * 6, budget=6, tx=tx)
        for sid, ms, made in zip(pool[:3], (30_000, 40_000, 20_000),
                                 ("accepted", "edited", "scratch"), strict=True):
            store.write_labels([NewLabel(sid, value=0, provenance=made, active_ms=ms)],
                               annotator="alice", source="expert", tx=tx)
        for sid, ms in zip(pool[3:6], (100_000, 80_000, None), strict=True):
            store.write_labels([NewLabel(sid, value=1, provenance="scratch", active_ms=ms)],
                               annotator="bob", source="expert", tx=tx)
        store.add_model(0, None, {"val_auc": 0.7, "test_auc": 0.65}, n_labeled=6,
                        labels_digest="d0", tx=tx)
        store.add_batch(1, "margin", pool[6:8], [0.5, 0.4], budget=2, tx=tx)
        for sid in pool[6:8]:
            store.write_labels([NewLabel(sid, value=0, provenance="accepted", active_ms=45_000)],
                               annotator="alice", source="expert", tx=tx)
        store.add_model(1, None, {"val_auc": 0.8, "test_auc": 0.75}, n_labeled=8,
                        labels_digest="d1", tx=tx)
    return store


def test_labels_per_hour_and_provenance_per_annotator(project):
    report = cost_report(_hand_made(project))
    by = {a["annotator"]: a for a in report["annotators"]}
    alice, bob = by["alice"], by["bob"]
    assert alice["n_labels"] == 5 and alice["n_measured"] == 5
    assert alice["active_hours"] == pytest.approx(180 / 3600)  # 30+40+20+45+45 s
    assert alice["labels_per_hour"] == pytest.approx(5 / (180 / 3600))  # 100 / h
    assert alice["seconds_per_label"] == pytest.approx(36.0)
    assert alice["provenance"] == {"accepted": 3, "edited": 1, "scratch": 1, "none": 0}
    # bob's unmeasured label counts in n_labels, not in the rate
    assert bob["n_labels"] == 3 and bob["n_measured"] == 2
    assert bob["labels_per_hour"] == pytest.approx(2 / (180 / 3600))  # 40 / h
    assert bob["provenance"] == {"accepted": 0, "edited": 0, "scratch": 3, "none": 0}
    assert report["total"]["n_labels"] == 8
    assert report["total"]["active_hours"] == pytest.approx(360 / 3600)


def test_learning_curve_against_labels_and_expert_hours(project):
    report = cost_report(_hand_made(project))
    assert report["metric"] == "val_auc"
    curve = report["curve"]
    assert [c["round"] for c in curve] == [0, 1]
    assert [c["n_labeled"] for c in curve] == [6, 8]
    assert [c["metric"] for c in curve] == [0.7, 0.8]
    # cumulative expert time of the labels each model was trained on (rounds <= k)
    assert curve[0]["expert_hours"] == pytest.approx(270 / 3600)
    assert curve[1]["expert_hours"] == pytest.approx(360 / 3600)
    assert [c["n_unmeasured"] for c in curve] == [1, 1]


def test_report_writes_png_and_csv(project, tmp_path):
    store = _hand_made(project)
    written = write_report(store, tmp_path / "report")
    png = tmp_path / "report" / "learning_curve.png"
    assert png in written
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] > img.size[1] > 100  # two panels side by side
    folder = tmp_path / "report"
    rows = list(csv.DictReader((folder / "learning_curve.csv").read_text().splitlines()))
    assert [(r["round"], r["n_labeled"], r["metric"]) for r in rows] == [
        ("0", "6", "0.7"), ("1", "8", "0.8")]
    assert float(rows[1]["expert_hours"]) == pytest.approx(0.1)
    people = list(csv.DictReader((folder / "annotators.csv").read_text().splitlines()))
    assert [(p["annotator"], float(p["labels_per_hour"])) for p in people] == [
        ("alice", pytest.approx(100.0)), ("bob", pytest.approx(40.0))]


def test_report_and_status_commands(project, tmp_path, capsys):
    _hand_made(project)
    proj = str(project.directory)
    out = tmp_path / "rep"
    assert main(["project", "report", proj, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "learning_curve.png" in text and (out / "learning_curve.png").is_file()
    assert "alice: 5 labels" in text and "100.0 labels/h" in text

    main(["project", "status", proj])
    text = capsys.readouterr().out
    assert "annotation cost" in text and "bob: 3 labels" in text
    assert "3 accepted, 1 edited, 1 scratch" in text
    main(["project", "status", proj, "--json"])
    info = json.loads(capsys.readouterr().out)
    assert info["cost"]["annotators"][0]["annotator"] == "alice"
    assert info["cost"]["curve"][1]["expert_hours"] == pytest.approx(0.1)

    assert main(["project", "report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err


def test_format_cost_without_page_labels(project):
    lines = format_cost(cost_report(project))
    assert lines == ["annotation cost: no labels from the page yet"]


# -- the page's timing module with a simulated clock (node, when installed) ----------------------
TIMING_JS = (__import__("pathlib").Path(__file__).resolve().parents[2]
             / "src/medactive/project/static/timing.js")

# events in seconds: (what, t[, arg]); idle threshold 60 s
_SCRIPT = """
const { createActiveTimer } = require(process.argv[1]);
const t = createActiveTimer({ idleMs: 60000 });
const s = (x) => 1000 * x;
const out = {};
t.show("a", s(0));
t.input(s(10));                    // 0..10 active
t.visibility(false, s(15));        // 10..15 active, then hidden
t.visibility(true, s(315));        // 300 s hidden: nothing
t.input(s(320));                   // 315..320 active
out.beforeIdle = t.activeMs("a", s(320));
out.idle = t.activeMs("a", s(520)); // 200 s without input: only 60 count
t.show("b", s(520));               // another item: a's clock stops
t.input(s(530));
out.b = t.activeMs("b", s(540));
out.a = t.activeMs("a", s(600));
t.show("a", s(600));               // back to a: its time goes on
out.aBack = t.activeMs("a", s(610));
t.take("a", s(610));
out.aTaken = t.activeMs("a", s(615));
const h = createActiveTimer({ idleMs: 60000, visible: false });
h.show("c", s(0));                 // shown in a hidden tab
out.hidden = h.activeMs("c", s(30));
console.log(JSON.stringify(out));
"""


@pytest.mark.slow
def test_timing_module_excludes_hidden_and_idle_time():
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the browser test covers the page)")
    done = subprocess.run([node, "-e", _SCRIPT, str(TIMING_JS)], capture_output=True,
                          text=True, timeout=60, check=True)
    out = json.loads(done.stdout)
    assert out["beforeIdle"] == 20_000  # 10 + 5 + 5 s
    assert out["idle"] == 20_000 + 60_000  # the 200 s pause counts 60 s (from 320 s: to 380 s)
    assert out["a"] == 80_000 and out["b"] == 20_000  # b: 520..540
    assert out["aBack"] == 90_000
    assert out["aTaken"] == 5_000
    assert out["hidden"] == 0
