"""The project store: schema, WAL, append-only labels, leases, annotator tokens."""

from __future__ import annotations

import sqlite3

import pytest

from medactive.errors import ConfigError
from medactive.project.store import NewLabel, ProjectStore


def _batch(store, ids, rnd=0):
    with store.transaction() as tx:
        store.add_batch(rnd, "random", ids, [0.5] * len(ids), budget=len(ids), tx=tx)


def test_wal_mode_and_schema(project):
    conn = sqlite3.connect(project.db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "samples", "labels", "queries", "rounds", "models", "annotators"} <= tables
    assert project.integrity_check() == "ok"


def test_samples_are_referenced_with_hash(project, image_folder):
    root, truth = image_folder
    samples = project.samples()
    assert [s.id for s in samples] == sorted(truth)
    s = project.sample("site2/case0000")
    assert s.path == "site2/case0000.png" and len(s.sha256) == 64
    assert project.sample_path(s) == root.resolve() / "site2" / "case0000.png"
    assert not list(project.directory.rglob("*.png"))  # nothing copied


def test_missing_project_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a medactive project"):
        ProjectStore(tmp_path)


def test_labels_are_append_only_and_latest_wins(project):
    project.add_label(NewLabel("case0001", value=0), annotator="alice")
    project.add_label(NewLabel("case0001", value=1), annotator="bob")
    assert project.current_labels()["case0001"].value == 1
    assert [(l.value, l.annotator, l.source) for l in project.label_history("case0001")] == [
        (0, "alice", "expert"), (1, "bob", "expert")]


def test_failed_transaction_writes_nothing(project):
    with pytest.raises(RuntimeError), project.transaction() as tx:
        project.write_labels([NewLabel("case0001", value=0)], annotator="a",
                             source="expert", tx=tx)
        raise RuntimeError("boom")
    assert project.current_labels() == {}


def test_label_marks_query_labelled_and_round(project):
    _batch(project, ["case0001", "case0002"])
    project.add_label(NewLabel("case0002", value=0), annotator="alice")
    status = {q.sample_id: q.status for q in project.batch(0)}
    assert status == {"case0001": "pending", "case0002": "labelled"}
    assert project.current_labels()["case0002"].round == 0


def test_two_annotators_never_hold_the_same_item(project):
    _batch(project, ["case0001", "case0002", "case0003"])
    a = project.lease_next("alice", seconds=60)
    b = project.lease_next("bob", seconds=60)
    assert a.sample_id == "case0001" and b.sample_id == "case0002"
    # asking again returns the item already held, not a new one
    assert project.lease_next("alice", seconds=60).sample_id == "case0001"
    refused = project.label_as_holder(NewLabel("case0001", value=1), annotator="bob")
    assert refused.outcome == "held" and refused.holder == "alice"
    assert project.label_as_holder(NewLabel("case0001", value=1),
                                   annotator="alice").outcome == "written"
    assert project.lease_next("alice", seconds=60).sample_id == "case0003"
    assert project.lease_next("carol", seconds=60) is None


def test_expired_lease_is_offered_again(project):
    _batch(project, ["case0001"])
    assert project.lease_next("alice", seconds=-1).sample_id == "case0001"  # already expired
    assert project.lease_next("bob", seconds=60).sample_id == "case0001"
    assert project.held_by_other("case0001", "alice")


def test_skip_releases_and_review_offers_skipped(project):
    _batch(project, ["case0001", "case0002"])
    project.lease_next("alice", seconds=60)
    assert project.set_status("case0001", "skipped", annotator="alice")
    assert project.lease_next("alice", seconds=60).sample_id == "case0002"
    project.add_label(NewLabel("case0002", value=0), annotator="alice")
    assert project.lease_next("alice", seconds=60) is None
    assert project.lease_next("alice", seconds=60, statuses=("skipped",)).sample_id == "case0001"


def test_tokens_are_stored_hashed(project):
    token = project.add_annotator("alice")
    assert project.annotator_for_token(token) == "alice"
    assert project.annotator_for_token(token + "x") is None
    assert project.annotator_for_token("") is None
    project.close()
    raw = b"".join(p.read_bytes() for p in project.directory.glob("project.db*"))
    assert token.encode() not in raw
    # a new token replaces the old one
    token2 = project.add_annotator("alice")
    assert project.annotator_for_token(token) is None
    assert project.annotator_for_token(token2) == "alice"


def test_counts(project):
    _batch(project, ["case0001", "case0002"])
    project.add_label(NewLabel("case0001", value=1), annotator="a")
    counts = project.counts()
    assert counts["samples"]["pool"] == 12
    assert counts["labelled"]["pool"] == 1
    assert counts["batch"] == {"pending": 1, "labelled": 1, "skipped": 0}


def test_an_excluded_item_is_neither_held_nor_leased_again(project):
    from medactive.project.integrity import exclude_samples

    _batch(project, ["case0001", "case0002"])
    assert project.lease_next("bob", seconds=600).sample_id == "case0001"
    assert project.held_by_others("alice", statuses=("pending", "skipped"))[0] == 1
    exclude_samples(project, ["case0001"], reason="unreadable", by="lab")
    # bob's lease on an excluded image no longer keeps alice waiting for it
    assert project.held_by_others("alice", statuses=("pending", "skipped")) == (0, None)
    assert project.take_lease("case0001", "alice", seconds=600) == (False, None, None)
    assert project.take_lease("case0002", "alice", seconds=600)[0]
