"""Model-assisted labelling (issue 13 part 1) through FastAPI's TestClient: the round's model's
proposal and why the item was chosen are in the item, the stored label records its provenance
(accepted / edited / scratch), and an old store gains the provenance column keeping every label.
"""

from __future__ import annotations

import sqlite3
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from medactive.calibration import apply_temperature
from medactive.project.importer import import_labels
from medactive.project.label_studio import _model_predictions
from medactive.project.server import create_app
from medactive.project.signals import latest_temperature
from medactive.project.store import SCHEMA_VERSION, ProjectStore
from medactive.project.workflow import query, train
from tests.project.conftest import write_csv


def _trained(project, tmp_path, budget: int = 3):
    """Round 0 labelled from the truth, its model trained, round 1 queried by margin."""
    batch0 = query(project, strategy="random", budget=4).sample_ids
    import_labels(project, write_csv(tmp_path / "l.csv",
                                     [(i, "ab"[project.truth[i]]) for i in batch0]))
    train(project)
    return query(project, strategy="margin", budget=budget)


def _client(project):
    token = project.add_annotator("alice")
    return TestClient(create_app(project.directory)), {"Authorization": f"Bearer {token}"}


def _provenance(store: ProjectStore, sid: str) -> str | None:
    return store.current_labels_for([sid])[sid].provenance


def test_no_model_no_proposal_and_label_is_from_scratch(project):
    query(project, strategy="random", budget=4)
    client, h = _client(project)
    item = client.post("/api/next", headers=h).json()
    assert item["proposal"] is None
    assert item["why"] == {"strategy": "initial", "round": 0, "rank": 0, "score": None}
    assert client.post("/api/label", json={"key": item["key"], "value": 1},
                       headers=h).status_code == 200
    assert _provenance(project, item["id"]) == "scratch"


@pytest.mark.slow
def test_proposal_shown_accepted_and_edited(project, tmp_path):
    batch1 = _trained(project, tmp_path)
    client, h = _client(project)
    preds = _model_predictions(project, list(batch1.sample_ids), device="cpu")
    temp = latest_temperature(project)
    item = client.post("/api/next", headers=h).json()
    assert item["id"] == batch1.sample_ids[0]
    p = apply_temperature(np.log(preds["values"][item["id"]])[None], temp)[0]
    prop = item["proposal"]
    assert prop["value"] == int(np.argmax(p)) and prop["class"] == "ab"[prop["value"]]
    assert prop["probability"] == pytest.approx(float(p.max()))
    assert prop["model"] == preds["model_version"] and prop["temperature"] == temp
    assert item["why"]["strategy"] == "margin" and item["why"]["rank"] == 0
    assert item["why"]["score"] == pytest.approx(item["score"])
    # the proposal unchanged -> accepted
    client.post("/api/label", json={"key": item["key"], "value": prop["value"]}, headers=h)
    assert _provenance(project, item["id"]) == "accepted"
    # the other class -> edited
    item2 = client.post("/api/next", headers=h).json()
    other = 1 - item2["proposal"]["value"]
    client.post("/api/label", json={"key": item2["key"], "value": other}, headers=h)
    assert _provenance(project, item2["id"]) == "edited"
    # a correction back to the proposal by the same annotator is "accepted" again
    seq = project.current_labels_for([item2["id"]])[item2["id"]].seq
    client.post("/api/label", json={"key": item2["key"], "value": 1 - other, "replaces": seq},
                headers=h)
    assert _provenance(project, item2["id"]) == "accepted"
    # history keeps the edited reading
    assert [lab.provenance for lab in project.label_history(item2["id"])] == ["edited",
                                                                              "accepted"]


def test_old_store_gains_provenance_keeping_every_label(project, tmp_path):
    """A store written before the column existed (schema version 1): opening it adds the
    nullable column, every label row stays as it was (provenance NULL) and the database is
    sound."""
    batch = query(project, strategy="random", budget=4).sample_ids
    import_labels(project, write_csv(tmp_path / "l.csv",
                                     [(i, "ab"[project.truth[i]]) for i in batch]))
    project.close()
    db = project.directory / "project.db"
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE labels DROP COLUMN provenance")  # back to the version-1 table
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    before = con.execute("SELECT * FROM labels ORDER BY seq").fetchall()
    con.close()
    assert len(before) == 4

    store = ProjectStore(project.directory)
    rows = store.execute("SELECT * FROM labels ORDER BY seq")
    assert [tuple(r)[:-1] for r in rows] == before
    assert [r["provenance"] for r in rows] == [None] * 4
    assert store.get_meta("schema_version") == SCHEMA_VERSION  # 2 or any later version
    assert store.integrity_check() == "ok"
    assert {s: lab.value for s, lab in store.current_labels().items()} == {
        i: project.truth[i] for i in batch}
    store.close()
    # opening again changes nothing
    again = ProjectStore(project.directory)
    assert len(again.execute("SELECT * FROM labels")) == 4
    again.close()


def test_provenance_must_be_one_of_three(project):
    query(project, strategy="random", budget=4)
    sid = project.batch(0)[0].sample_id
    with pytest.raises(sqlite3.IntegrityError), project.transaction() as tx:
        tx.execute("INSERT INTO labels(sample_id, value, annotator, created_at, round, "
                   "source, provenance) VALUES (?, 0, 'x', 'now', 0, 'expert', 'guessed')",
                   (sid,))
