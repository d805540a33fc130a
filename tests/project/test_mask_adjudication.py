"""Adjudicating mask disagreements on the page (``add-annotator --adjudicator``): the readers'
masks, their vote and pairwise Dice come from ``/api/adjudicate/{key}/masks``; the adjudicator
keeps one reader's mask (``/api/adjudicate`` with ``reader``) or saves an edited mask
(``/api/adjudicate/{key}/mask?start=vote|READER``), stored by the same
:func:`medactive.project.adjudication.adjudicate` as ``project adjudicate``, with how it was
decided. Bad input is a 4xx naming the field, and nothing stored changes.

The masks are 8x8 and hand-made: alice marks rows 0-3, columns 0-3 (16 pixels), bob rows 0-3,
columns 0-1 (8 pixels, all inside alice's): Dice 2 * 8 / (16 + 8) = 2/3 < 0.8, a disagreement;
their vote (ties to background) is bob's mask.
"""

from __future__ import annotations

import base64
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.cli import main
from medactive.project.readings import ReaderDesk, load_mask, set_adjudicator, training_labels
from medactive.project.store import NewLabel, ProjectStore
from medactive.project.workflow import init_project, labeled_state, query, status

pytest.importorskip("medactive.tasks.segmentation.task")

N = 8  # the images' side


def write_png_folder(root: Path, n_pool: int = 4) -> Path:
    """``n_pool`` 8x8 pool images ``case0..`` without masks and a val and a test image with
    masks (classes background, lesion)."""
    rng = np.random.default_rng(0)
    lesion = np.zeros((N, N), np.uint8)
    lesion[2:6, 2:6] = 1
    for i in range(n_pool + 2):
        img = np.clip(40 + 150 * lesion + rng.normal(0, 10, (N, N)), 0, 255).astype(np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "images" / f"case{i}.png")
    (root / "masks").mkdir(exist_ok=True)
    for i in (n_pool, n_pool + 1):
        Image.fromarray(lesion).save(root / "masks" / f"case{i}.png")
    (root / "val.list").write_text(f"case{n_pool}\n")
    (root / "test.list").write_text(f"case{n_pool + 1}\n")
    (root / "classes.txt").write_text("background\nlesion\n")
    return root


def masks_abc() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """alice's, bob's and an edited mask (rows 0-1, columns 0-3: 8 pixels)."""
    a = np.zeros((N, N), np.uint8)
    a[0:4, 0:4] = 1
    b = np.zeros((N, N), np.uint8)
    b[0:4, 0:2] = 1
    e = np.zeros((N, N), np.uint8)
    e[0:2, 0:4] = 1
    return a, b, e


def read_twice(store: ProjectStore, disputed: str, agreed: str) -> None:
    """alice and bob read ``disputed`` as masks a and b (a disagreement) and ``agreed`` both
    as mask a (annotators alice and bob must exist)."""
    from medactive.project.volumes import store_png

    a, b, _ = masks_abc()
    desk = ReaderDesk(store)
    for sid, pair in ((disputed, (a, b)), (agreed, (a, a))):
        for who, m in zip(("alice", "bob"), pair, strict=True):
            assert desk.take_lease(sid, who, seconds=600)[0]
            out = desk.label_as_holder(NewLabel(sid, mask_path=store_png(store, m),
                                                provenance="scratch"), annotator=who)
            assert out.outcome == "written"


def png(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def decode(values: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(values), np.uint8).reshape(N, N)


@pytest.fixture
def double_read(tmp_path):
    """A 2-reader segmentation project: ``disputed`` read as alice's and bob's masks (a
    disagreement), ``agreed`` read identically by both; dana adjudicates, carol only reads.
    Returns ``(store, client, headers by name, {"disputed": sid, "agreed": sid})``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from medactive.project.server import create_app

    folder = write_png_folder(tmp_path / "lesions")
    store = init_project(tmp_path / "proj", folder, task="segmentation", preset="smoke",
                         initial=2, readers=2)
    disputed, agreed = query(store, strategy="random", budget=2).sample_ids
    tokens = {n: store.add_annotator(n) for n in ("alice", "bob", "carol", "dana")}
    set_adjudicator(store, "dana")
    read_twice(store, disputed, agreed)
    headers = {n: {"Authorization": f"Bearer {t}"} for n, t in tokens.items()}
    client = TestClient(create_app(store.directory))
    return store, client, headers, {"disputed": disputed, "agreed": agreed}


def key_of(store: ProjectStore, sid: str) -> int:
    return store.sample(sid).key


def stored(store: ProjectStore) -> tuple:
    """Everything an adjudication may change: labels, adjudications, the mask files."""
    labels = [tuple(r) for r in store.execute("SELECT * FROM labels ORDER BY seq")]
    decided = [tuple(r) for r in store.execute("SELECT * FROM adjudications ORDER BY seq")]
    files = sorted(p.name for p in (store.directory / "masks").glob("*.png"))
    return labels, decided, files


def decision_row(store: ProjectStore, sid: str) -> dict:
    rows = store.execute("SELECT * FROM adjudications WHERE sample_id = ? ORDER BY seq DESC",
                         (sid,))
    return dict(rows[0])


# -- what the adjudicator sees --------------------------------------------------------------------
def test_the_adjudicator_gets_each_readers_mask_the_vote_and_dice(double_read):
    _, client, h, ids = double_read
    a, b, _ = masks_abc()
    offered = client.post("/api/next", headers=h["dana"]).json()
    assert offered["adjudicate"] and offered["id"] == ids["disputed"]
    assert [r["annotator"] for r in offered["readings"]] == ["alice", "bob"]
    assert offered["dice"] == pytest.approx(2 / 3)
    got = client.get(f"/api/adjudicate/{offered['key']}/masks", headers=h["dana"])
    assert got.status_code == 200, got.text
    data = got.json()
    assert (data["height"], data["width"]) == (N, N)
    assert [r["annotator"] for r in data["readers"]] == ["alice", "bob"]
    assert np.array_equal(decode(data["readers"][0]["values"]), a)
    assert np.array_equal(decode(data["readers"][1]["values"]), b)
    assert np.array_equal(decode(data["vote"]), b)  # two readers: foreground where both marked
    assert data["pairs"] == [{"readers": ["alice", "bob"], "dice": pytest.approx(2 / 3)}]


def test_only_an_adjudicator_sees_the_readers_masks(double_read):
    store, client, h, ids = double_read
    key = key_of(store, ids["disputed"])
    got = client.get(f"/api/adjudicate/{key}/masks", headers=h["alice"])
    assert got.status_code == 403 and "not an adjudicator" in got.json()["detail"]
    got = client.get(f"/api/adjudicate/{key_of(store, ids['agreed'])}/masks", headers=h["dana"])
    assert got.status_code == 409 and "not a disagreement" in got.json()["detail"]


# -- deciding -----------------------------------------------------------------------------------
def test_keeping_a_readers_mask_records_the_pick(double_read, capsys):
    store, client, h, ids = double_read
    a, _, _ = masks_abc()
    sid = ids["disputed"]
    labels_before = stored(store)[0]
    out = client.post("/api/adjudicate", headers=h["dana"],
                      json={"key": key_of(store, sid), "reader": "alice"})
    assert out.status_code == 200, out.text
    made = training_labels(store)[sid]
    assert made.rule == "adjudicated" and np.array_equal(load_mask(store, made.mask_path), a)
    assert labeled_state(store).labels[sid] == made.mask_path
    row = decision_row(store, sid)
    assert (row["adjudicator"], row["method"], row["reader"]) == ("dana", "reader", "alice")
    assert stored(store)[0] == labels_before  # every reading untouched
    assert main(["project", "status", str(store.directory), "--json"]) == 0
    agreement = json.loads(capsys.readouterr().out)["agreement"]
    (d,) = [d for d in agreement["disagreements"] if d["sample_id"] == sid]
    assert d["adjudicated"]["by"] == "dana" and d["adjudicated"]["method"] == "reader"
    assert d["adjudicated"]["reader"] == "alice"
    assert agreement["open_disagreements"] == 0
    assert client.post("/api/next", headers=h["dana"]).json()["done"] is True


@pytest.mark.parametrize("start", ["vote", "bob"])
def test_an_edited_mask_becomes_the_training_label(double_read, start):
    store, client, h, ids = double_read
    _, _, e = masks_abc()
    sid = ids["disputed"]
    labels_before = stored(store)[0]
    out = client.post(f"/api/adjudicate/{key_of(store, sid)}/mask?start={start}",
                      headers=h["dana"], content=png(e))
    assert out.status_code == 200, out.text
    made = training_labels(store)[sid]
    assert made.rule == "adjudicated" and np.array_equal(load_mask(store, made.mask_path), e)
    row = decision_row(store, sid)
    assert (row["adjudicator"], row["method"]) == ("dana", "edited")
    assert row["reader"] == (None if start == "vote" else "bob")  # where the edit started
    assert stored(store)[0] == labels_before
    assert status(store)["agreement"]["open_disagreements"] == 0


def test_cli_decisions_record_how_they_were_made(double_read):
    store, _, _, ids = double_read
    assert main(["project", "adjudicate", str(store.directory), "--sample", ids["disputed"],
                 "--reader", "bob", "--by", "erin"]) == 0
    row = decision_row(store, ids["disputed"])
    assert (row["adjudicator"], row["method"], row["reader"]) == ("erin", "reader", "bob")


# -- bad input: a 4xx naming the field, nothing stored changes -----------------------------------
def _mask(content=None, *, who="dana", item="disputed", query="?start=vote"):
    """A POST of an edited mask (default: eve's 8x8 mask) as ``who`` for ``item``."""
    def send(store, client, h, ids):
        body = png(masks_abc()[2]) if content is None else content
        return client.post(f"/api/adjudicate/{key_of(store, ids[item])}/mask{query}",
                           headers=h[who], content=body)
    return send


def _pick(*, who="dana", item="disputed", **decision):
    """A POST of one decision (``reader=`` or ``value=``) as ``who`` for ``item``."""
    def send(store, client, h, ids):
        return client.post("/api/adjudicate", headers=h[who],
                           json={"key": key_of(store, ids[item]), **decision})
    return send


@pytest.mark.parametrize(("send", "code", "words"), [
    (_mask(png(np.zeros((N, N - 1), np.uint8))), 422, ["mask", "(8, 7)", "(8, 8)"]),
    # classes are 0 (background) and 1 (lesion)
    (_mask(png(np.full((N, N), 2, np.uint8))), 422, ["mask", "0..1"]),
    (_mask(b"not an image"), 422, ["mask"]),
    (_pick(reader="carol"), 422, ["reader:", "'carol' is not a reader", "alice, bob"]),
    (_mask(query="?start=carol"), 422, ["start:", "'carol' is not a reader"]),
    (_mask(query=""), 422, ["start:", "vote"]),
    (_pick(value=1), 422, ["value:", "reader"]),
    (_mask(who="alice"), 403, ["alice is not an adjudicator"]),
    (_pick(who="bob", reader="bob"), 403, ["bob is not an adjudicator"]),
    (_mask(item="agreed"), 409, ["not a disagreement"]),
    (_pick(item="agreed", reader="alice"), 409, ["not a disagreement"]),
], ids=["wrong-size", "bad-values", "not-a-png", "pick-a-non-reader", "start-from-a-non-reader",
        "no-start", "a-class-for-a-mask", "not-an-adjudicator", "not-an-adjudicator-picks",
        "no-disagreement", "no-disagreement-pick"])
def test_bad_decisions_are_refused_and_change_nothing(double_read, send, code, words):
    store, client, h, ids = double_read
    before = stored(store)
    out = send(store, client, h, ids)
    assert out.status_code == code, out.text
    detail = out.json()["detail"]
    for w in words:
        assert w in detail, detail
    assert stored(store) == before


def test_old_store_gains_the_decision_columns(double_read):
    import sqlite3

    store, _, _, ids = double_read
    from medactive.project.adjudication import Decision, adjudicate

    adjudicate(store, [Decision(ids["disputed"], reader="alice")], by="dana")
    store.close()
    con = sqlite3.connect(store.directory / "project.db")
    con.execute("ALTER TABLE adjudications DROP COLUMN method")
    con.execute("ALTER TABLE adjudications DROP COLUMN reader")
    con.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    again = ProjectStore(store.directory)
    row = decision_row(again, ids["disputed"])
    assert (row["adjudicator"], row["method"], row["reader"]) == ("dana", None, None)
    assert training_labels(again)[ids["disputed"]].rule == "adjudicated"
    assert again.integrity_check() == "ok"
    again.close()
