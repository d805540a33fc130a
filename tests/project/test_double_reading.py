"""Double reading (``project init --readers K``): per-reader leases, the training label
(adjudicated, else majority / vote), inter-reader agreement against scikit-learn, adjudication
from the CLI (bad input refused whole) and a SIGKILL during adjudication."""

from __future__ import annotations

import json
import sqlite3
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from medactive.cli import main
from medactive.errors import ConfigError
from medactive.project.adjudication import DELAY_ENV, MARK_ENV, Decision, adjudicate
from medactive.project.agreement import (
    agreement_report,
    class_agreement,
    dice,
    fleiss_kappa,
    format_agreement,
)
from medactive.project.readings import ReaderDesk, training_labels, vote_mask
from medactive.project.store import NewLabel, ProjectStore
from medactive.project.workflow import init_project, labeled_state, query, status

from .conftest import write_csv, write_folder
from .killing import run_cli, sigkill, start_cli, wait_for_row


def _project(tmp_path, readers: int, n: int = 12, initial: int = 8):
    truth = write_folder(tmp_path / "images", n=n, subfolder_every=0)
    store = init_project(tmp_path / "proj", tmp_path / "images", classes=["a", "b"],
                         preset="smoke", initial=initial, readers=readers)
    store.truth = truth
    query(store, strategy="random", budget=initial)  # the random initial batch, pending
    return store


def _read(store, desk: ReaderDesk, who: str, sid: str, value: int):
    """``who`` opens ``sid`` on the page and labels it ``value``."""
    taken, holder, _ = desk.take_lease(sid, who, seconds=600)
    assert taken, (who, sid, holder)
    out = desk.label_as_holder(NewLabel(sid, value=value, provenance="scratch"), annotator=who)
    assert out.outcome == "written", out


# -- readers and leases ------------------------------------------------------------------------
def test_readers_default_one_and_checked(tmp_path):
    write_folder(tmp_path / "images", n=4, subfolder_every=0)
    store = init_project(tmp_path / "one", tmp_path / "images", classes=["a", "b"])
    assert "readers" not in store.meta()  # a single-reader project's meta is as before
    assert ReaderDesk(store).k == 1
    with pytest.raises(ConfigError, match="--readers must be"):
        init_project(tmp_path / "zero", tmp_path / "images", classes=["a", "b"], readers=0)
    two = init_project(tmp_path / "two", tmp_path / "images", classes=["a", "b"], readers=2)
    assert two.get_meta("readers") == 2


def test_each_item_goes_to_two_readers_never_twice(tmp_path):
    """K = 2, three annotators: the first item is offered to alice and bob, carol gets the
    second; nobody is offered an item they read; an item is labelled after its 2nd reading."""
    store = _project(tmp_path, readers=2, initial=2)
    desk = ReaderDesk(store)
    first, second = [q.sample_id for q in store.batch(0)]
    assert desk.lease_next("alice", seconds=600).sample_id == first
    assert desk.lease_next("bob", seconds=600).sample_id == first
    assert desk.lease_next("carol", seconds=600).sample_id == second  # `first` is full
    assert desk.held_by_other(first, "carol") and not desk.held_by_other(first, "alice")
    taken, holder, _ = desk.take_lease(first, "carol", seconds=600)
    assert not taken and holder in ("alice", "bob")
    # carol cannot label the item she does not hold
    refused = desk.label_as_holder(NewLabel(first, value=0), annotator="carol")
    assert refused.outcome == "not_leased"

    for who in ("alice", "bob"):
        out = desk.label_as_holder(NewLabel(first, value=0), annotator=who)
        assert out.outcome == "written"
        if who == "alice":  # one reading of two: still open for bob
            assert store.batch(0)[0].status == "pending"
    assert store.batch(0)[0].status == "labelled"
    # alice's next item is the second (carol holds one slot of it), never `first` again
    assert desk.lease_next("alice", seconds=600).sample_id == second
    assert desk.lease_next("bob", seconds=600) is None  # second: alice and carol
    assert desk.held_by_others("bob") == (1, pytest.approx(time.time() + 600, abs=30))
    # a reader corrects only their own reading, naming it
    mine = desk.label_of(first, "alice")
    assert desk.label_as_holder(NewLabel(first, value=1), annotator="alice").outcome == (
        "labelled")
    fixed = desk.label_as_holder(NewLabel(first, value=1), annotator="alice", replaces=mine.seq)
    assert fixed.outcome == "written" and desk.label_of(first, "bob").value == 0
    assert len(store.label_history(first)) == 3  # every row kept


def test_a_readers_skip_is_their_own(tmp_path):
    store = _project(tmp_path, readers=2, initial=2)
    desk = ReaderDesk(store)
    first, second = [q.sample_id for q in store.batch(0)]
    assert desk.lease_next("alice", seconds=600).sample_id == first
    assert desk.set_status(first, "skipped", annotator="alice")
    assert desk.lease_next("alice", seconds=600).sample_id == second
    assert desk.lease_next("bob", seconds=600).sample_id == first  # still open for others
    assert store.batch(0)[0].status == "pending"
    assert desk.lease_next("alice", seconds=600, statuses=("skipped",)).sample_id == first


# -- agreement ---------------------------------------------------------------------------------
#: hand-made readings of 8 items by two readers (first reading, second reading)
FIRST = [0, 0, 1, 1, 0, 1, 0, 1]
SECOND = [0, 1, 1, 1, 0, 0, 0, 1]


def _two_readers(tmp_path):
    store = _project(tmp_path, readers=2, initial=8)
    desk = ReaderDesk(store)
    ids = [q.sample_id for q in store.batch(0)]
    for i, sid in enumerate(ids):  # readers vary per item; reading order = first, second
        r1, r2 = ("alice", "bob") if i % 2 == 0 else ("carol", "alice")
        _read(store, desk, r1, sid, FIRST[i])
        _read(store, desk, r2, sid, SECOND[i])
    return store, ids


def test_status_kappa_matches_scikit_learn(tmp_path, capsys):
    from sklearn.metrics import cohen_kappa_score

    store, ids = _two_readers(tmp_path)
    report = status(store)["agreement"]
    expected = cohen_kappa_score(FIRST, SECOND)  # p_o = 6/8, p_e = 0.5: 0.5
    assert report["measure"] == "cohen_kappa"
    assert report["overall"]["kappa"] == pytest.approx(expected)
    assert report["overall"]["n_items"] == 8
    assert report["rounds"] == [{"round": 0, "n_items": 8, "kappa": pytest.approx(expected),
                                 "observed_agreement": 0.75}]
    assert [d["sample_id"] for d in report["disagreements"]] == sorted([ids[1], ids[5]])
    assert report["training_label_rules"]["unresolved"] == 2
    assert report["training_label_rules"]["unanimous"] == 6
    # text and JSON of `project status`
    assert main(["project", "status", str(store.directory)]) == 0
    out = capsys.readouterr().out
    assert f"agreement (Cohen's kappa): overall {expected:.3f} (8 items)" in out
    assert "disagreements: 2 (2 waiting for an adjudicator" in out
    assert main(["project", "status", str(store.directory), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["agreement"]["overall"]["kappa"] == pytest.approx(expected)


def test_fleiss_kappa_textbook_example():
    """Fleiss (1971) as Wikipedia works it: 10 subjects, 14 raters, 5 categories: 0.210."""
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=5e-5)
    try:
        from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss
    except ImportError:
        return
    assert fleiss_kappa(table) == pytest.approx(sm_fleiss(np.asarray(table)))


def test_three_readers_fleiss_and_majority(tmp_path):
    store = _project(tmp_path, readers=3, initial=3)
    desk = ReaderDesk(store)
    ids = [q.sample_id for q in store.batch(0)]
    votes = [[0, 0, 0], [0, 1, 1], [1, 1, 1]]
    for sid, vs in zip(ids, votes, strict=True):
        for who, v in zip(("alice", "bob", "carol"), vs, strict=True):
            _read(store, desk, who, sid, v)
    report = agreement_report(store)
    assert report["measure"] == "fleiss_kappa"
    # by hand: P = (1 + 1/3 + 1) / 3 = 7/9, p = (4/9, 5/9), P_e = 41/81: kappa = 22/40
    assert report["overall"]["kappa"] == pytest.approx((7 / 9 - 41 / 81) / (1 - 41 / 81))
    assert class_agreement(votes, 2) == pytest.approx(report["overall"]["kappa"])
    made = training_labels(store)
    assert (made[ids[1]].rule, made[ids[1]].value) == ("majority", 1)
    assert labeled_state(store).labels == {ids[0]: 0, ids[1]: 1, ids[2]: 1}


# -- training labels and adjudication ------------------------------------------------------------
def test_adjudication_replaces_training_label_and_keeps_both_readings(tmp_path):
    store, ids = _two_readers(tmp_path)
    split = ids[1]  # carol a, alice b
    state = labeled_state(store)
    assert split not in state.labels  # a tie waits for the adjudicator
    assert len(state.labels) == 6
    adjudicate(store, [Decision(split, label="b")], by="dana")
    state = labeled_state(store)
    assert state.labels[split] == 1
    made = training_labels(store)[split]
    assert made.rule == "adjudicated" and made.value == 1
    readings = {lab.annotator: lab.value for lab in store.label_history(split)}
    assert readings == {"carol": 0, "alice": 1}  # both readings kept
    report = agreement_report(store)
    decided = next(d for d in report["disagreements"] if d["sample_id"] == split)
    assert decided["adjudicated"]["label"] == "b" and decided["adjudicated"]["by"] == "dana"
    assert report["open_disagreements"] == 1
    # deciding again: the latest decision counts, both are kept
    adjudicate(store, [Decision(split, reader="carol")], by="dana")
    assert labeled_state(store).labels[split] == 0
    assert store.execute("SELECT COUNT(*) FROM adjudications")[0][0] == 2


def _counts(proj: Path) -> tuple[int, int]:
    conn = sqlite3.connect(proj / "project.db")
    try:
        return (conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM adjudications").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("args,message", [
    (["--sample", "nope", "--label", "a"], "unknown sample id 'nope'"),
    (["--sample", "{split}", "--label", "bb"], "'bb' is not a class (classes: a, b)"),
    (["--sample", "{agreed}", "--label", "a"], "is not a disagreement: its readers agree"),
    (["--sample", "{split}", "--reader", "zed"], "'zed' is not a reader of"),
    (["--sample", "{split}"], "--sample needs either --label CLASS or --reader NAME"),
])
def test_cli_adjudicate_bad_input_one_line_nothing_changed(tmp_path, capsys, args, message):
    store, ids = _two_readers(tmp_path)
    before = _counts(store.directory)
    args = [a.format(split=ids[1], agreed=ids[0]) for a in args]
    assert main(["project", "adjudicate", str(store.directory), *args]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert _counts(store.directory) == before


def test_cli_adjudicate_lists_and_decides_csv_all_or_nothing(tmp_path, capsys):
    store, ids = _two_readers(tmp_path)
    proj = str(store.directory)
    assert main(["project", "adjudicate", proj]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 disagreements (2 waiting for a decision)")
    assert f"{ids[1]} (round 0): carol a, alice b -> unresolved" in out
    bad = write_csv(tmp_path / "bad.csv", [(ids[1], "b"), (ids[5], "c"), (ids[0], "a")])
    before = _counts(store.directory)
    assert main(["project", "adjudicate", proj, "--csv", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "2 of 3 decisions refused, nothing written" in err
    assert "bad.csv line 3: 'c' is not a class" in err
    assert f"bad.csv line 4: sample {ids[0]!r} is not a disagreement" in err
    assert _counts(store.directory) == before
    good = write_csv(tmp_path / "good.csv", [(ids[1], "b"), (ids[5], "a")])
    assert main(["project", "adjudicate", proj, "--csv", str(good), "--by", "dana"]) == 0
    assert "recorded 2 decisions" in capsys.readouterr().out
    assert labeled_state(store).labels[ids[1]] == 1
    assert main(["project", "status", proj]) == 0
    assert "disagreements: 2 (0 waiting" in capsys.readouterr().out


def test_single_reader_project_has_nothing_to_adjudicate(project, capsys):
    assert status(project)["agreement"] == {"readers": 1}
    assert format_agreement({"readers": 1}) == []
    assert main(["project", "adjudicate", str(project.directory)]) != 0
    assert "one reader per item" in capsys.readouterr().err


def test_add_annotator_adjudicator(tmp_path, capsys):
    store = _project(tmp_path, readers=2, initial=2)
    assert main(["project", "add-annotator", str(store.directory), "dana",
                 "--adjudicator"]) == 0
    assert "annotator dana (adjudicator)" in capsys.readouterr().out
    from medactive.project.readings import adjudicators

    assert adjudicators(store) == ["dana"]


def test_old_store_gains_the_adjudicator_column(tmp_path):
    store = _project(tmp_path, readers=1, initial=2)
    store.add_annotator("alice")
    store.close()
    con = sqlite3.connect(store.directory / "project.db")
    con.execute("ALTER TABLE annotators DROP COLUMN adjudicator")
    con.execute("DROP TABLE adjudications")
    con.execute("DROP TABLE reader_leases")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    again = ProjectStore(store.directory)
    assert again.annotators() == ["alice"]
    assert again.execute("SELECT adjudicator FROM annotators")[0][0] == 0
    assert again.execute("SELECT COUNT(*) FROM adjudications")[0][0] == 0
    assert again.integrity_check() == "ok"


# -- masks -------------------------------------------------------------------------------------
def test_mask_vote_and_dice_by_hand():
    a = np.array([[0, 1, 1, 2], [0, 0, 2, 2]])
    b = np.array([[0, 1, 0, 2], [0, 1, 2, 2]])
    c = np.array([[0, 1, 1, 0], [0, 0, 2, 2]])
    assert vote_mask([a, b, c], 3).tolist() == [[0, 1, 1, 2], [0, 0, 2, 2]]
    assert vote_mask([a, b], 3).tolist() == [[0, 1, 0, 2], [0, 0, 2, 2]]  # ties: lowest class
    # class 1: |a|=2, |b|=2, both 1 -> 0.5; class 2: |a|=3, |b|=3, both 3 -> 1.0
    assert dice(a, b, 3) == pytest.approx(0.75)
    assert dice(np.zeros((2, 2)), np.zeros((2, 2)), 3) == 1.0


# -- the page (API) ------------------------------------------------------------------------------
def test_api_two_readers_and_the_adjudicators_page(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from medactive.project.readings import set_adjudicator
    from medactive.project.server import create_app

    store = _project(tmp_path, readers=2, initial=1)
    tokens = {n: store.add_annotator(n) for n in ("alice", "bob", "carol", "dana")}
    set_adjudicator(store, "dana")
    h = {n: {"Authorization": f"Bearer {t}"} for n, t in tokens.items()}
    client = TestClient(create_app(store.directory))
    assert client.get("/api/project", headers=h["dana"]).json()["adjudicator"] is True
    (sid,) = [q.sample_id for q in store.batch(0)]
    items = {n: client.post("/api/next", headers=h[n]).json() for n in ("alice", "bob")}
    assert items["alice"]["id"] == items["bob"]["id"] == sid
    carol = client.post("/api/next", headers=h["carol"]).json()
    assert carol.get("key") is None and carol["waiting"] and carol["held"] == 1
    key = items["alice"]["key"]
    assert client.post("/api/adjudicate", headers=h["dana"], json={"key": key, "value": 0}
                       ).status_code == 409  # not a disagreement (not read yet)
    for n, v in (("alice", 0), ("bob", 1)):
        assert client.post("/api/label", headers=h[n], json={"key": key, "value": v}).json()[
            "ok"]
    assert client.get(f"/api/item/{key}", headers=h["bob"]).json()["label"] == 1  # his own
    assert client.post("/api/next", headers=h["carol"]).json()["done"] is True
    offered = client.post("/api/next", headers=h["dana"]).json()
    assert offered["adjudicate"] and offered["id"] == sid
    assert [(r["annotator"], r["label"]) for r in offered["readings"]] == [("alice", "a"),
                                                                         ("bob", "b")]
    assert client.post("/api/adjudicate", headers=h["alice"], json={"key": key, "value": 1}
                       ).status_code == 403
    assert client.post("/api/adjudicate", headers=h["dana"], json={"key": key, "value": 1}
                       ).json()["ok"]
    assert client.post("/api/next", headers=h["dana"]).json()["done"] is True
    assert labeled_state(store).labels == {sid: 1}


# -- SIGKILL during adjudication -----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [1, 3])
def test_sigkill_during_adjudication(tmp_path, kill_at):
    """Killed after the first and after the last decision written inside its transaction: the
    database passes integrity_check, every reading survives, no decision of the file is stored,
    and rerunning finishes."""
    store = _project(tmp_path, readers=2, initial=6, n=8)
    desk = ReaderDesk(store)
    ids = [q.sample_id for q in store.batch(0)]
    for i, sid in enumerate(ids):  # items 0, 2, 4 disagree
        _read(store, desk, "alice", sid, 0)
        _read(store, desk, "bob", sid, 1 if i % 2 == 0 else 0)
    readings = store.execute("SELECT seq, sample_id, annotator, value FROM labels ORDER BY seq")
    store.close()
    csv = write_csv(tmp_path / "d.csv", [(ids[0], "a"), (ids[2], "b"), (ids[4], "a")])
    proj, mark = tmp_path / "proj", tmp_path / "mark"
    args = ("project", "adjudicate", str(proj), "--csv", str(csv))
    proc = start_cli(*args, **{DELAY_ENV: "0.3", MARK_ENV: str(mark)})
    wait_for_row(proc, mark, kill_at)
    sigkill(proc)
    conn = sqlite3.connect(proj / "project.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT seq, sample_id, annotator, value FROM labels ORDER BY seq"
                        ).fetchall() == [tuple(r) for r in readings]
    assert conn.execute("SELECT COUNT(*) FROM adjudications").fetchone()[0] == 0
    conn.close()
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    again = ProjectStore(proj)
    assert again.integrity_check() == "ok"
    assert {sid: labeled_state(again).labels[sid] for sid in (ids[0], ids[2], ids[4])} == {
        ids[0]: 0, ids[2]: 1, ids[4]: 0}
    again.close()


def test_two_readers_of_masks_dice_vote_and_adjudication(tmp_path, seg_folder):
    """Two readers' masks: status gives their mean pairwise Dice, a pair below 0.8 is a
    disagreement, the training label is the per-pixel vote until an adjudicator keeps one
    reader's mask."""
    from medactive.project.volumes import store_png
    from tests.project.conftest import SEG_H, SEG_W

    store = init_project(tmp_path / "proj", seg_folder, task="segmentation", preset="smoke",
                         initial=2, readers=2)
    labelled = store.current_labels()  # case0's slices came with masks
    close, far = [sid for sid in store.pool_ids() if sid not in labelled][:2]
    with store.transaction() as tx:  # a batch of two unlabelled slices, without training
        store.add_batch(0, "initial", [close, far], [float("nan")] * 2, budget=2, tx=tx)
    desk = ReaderDesk(store)
    base = np.zeros((SEG_H, SEG_W), np.uint8)
    a = base.copy()
    a[2:6, 2:6] = 1  # 16 pixels
    b = base.copy()
    b[2:6, 2:5] = 1  # 12 of them: Dice 24 / 28
    c = base.copy()
    c[8:10, 8:10] = 1  # disjoint from a: Dice 0
    for sid, (m1, m2) in ((close, (a, b)), (far, (a, c))):
        for who, m in (("alice", m1), ("bob", m2)):
            assert desk.take_lease(sid, who, seconds=600)[0]
            out = desk.label_as_holder(NewLabel(sid, mask_path=store_png(store, m)),
                                       annotator=who)
            assert out.outcome == "written"
    report = agreement_report(store)
    assert report["measure"] == "mean_pairwise_dice"
    assert report["overall"]["mean_dice"] == pytest.approx((24 / 28 + 0.0) / 2)
    assert [d["sample_id"] for d in report["disagreements"]] == [far]
    made = training_labels(store)
    assert made[close].rule == "vote" and made[far].rule == "vote"
    from medactive.project.readings import load_mask

    assert np.array_equal(load_mask(store, made[close].mask_path), b)  # the intersection
    with pytest.raises(ConfigError, match="give the reader, not a label"):
        adjudicate(store, [Decision(far, label="outer")], by="dana")
    adjudicate(store, [Decision(far, reader="bob")], by="dana")
    kept = training_labels(store)[far]
    assert kept.rule == "adjudicated" and np.array_equal(load_mask(store, kept.mask_path), c)
    assert labeled_state(store).labels[far] == kept.mask_path
