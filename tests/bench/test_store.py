"""The SQLite results store: round trip, insert-only, conflicts, resume records."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from medactive.bench.config import SupervisedUnit, Unit
from medactive.bench.store import ResultStore, record_to_row, row_to_record, store_path
from medactive.errors import ConfigError, DataError
from medactive.loop.active_loop import RoundRecord

UNIT = Unit("d", "entropy", 2, 0)
IDS = np.array(["a", "b", "c", "d", "e", "f"])


def _record(rnd: int, *, acc: float = 0.5) -> RoundRecord:
    added = np.array([0, 3]) if rnd == 0 else np.array([2 * rnd, 2 * rnd + 1])
    return RoundRecord(round=rnd, n_labeled=2 * (rnd + 1), metrics={"test_accuracy": acc,
                                                                   "test_auc": math.nan},
                       added_idx=added, added_scores=np.full(2, np.nan),
                       queried_idx=np.array([4, 5]), queried_scores=np.array([0.9, 0.25]),
                       seconds=1.5, query_seconds=0.25)


def test_round_trip(tmp_path):
    with ResultStore(tmp_path) as store:
        assert store.path == store_path(tmp_path)
        assert store.add_round(UNIT, record_to_row(_record(0), IDS))
        rows = store.rounds(unit=UNIT)
        assert rows[0]["added_ids"] == ["a", "d"] and rows[0]["queried_ids"] == ["e", "f"]
        assert rows[0]["metrics"] == {"test_accuracy": 0.5, "test_auc": None}
        record = store.completed_rounds(UNIT)[0]
    assert record.round == 0 and record.n_labeled == 2
    np.testing.assert_array_equal(record.added_idx, [0, 3])
    np.testing.assert_array_equal(record.queried_idx, [4, 5])
    np.testing.assert_array_equal(record.queried_scores, [0.9, 0.25])
    assert np.isnan(record.added_scores).all() and math.isnan(record.metrics["test_auc"])
    assert record.metrics["test_accuracy"] == 0.5 and record.seconds == 1.5


def test_rows_are_never_rewritten(tmp_path):
    store = ResultStore(tmp_path)
    store.add_round(UNIT, record_to_row(_record(0, acc=0.5), IDS))
    assert not store.add_round(UNIT, record_to_row(_record(0, acc=0.9), IDS))
    assert store.rounds(unit=UNIT)[0]["metrics"]["test_accuracy"] == 0.5
    with pytest.raises(sqlite3.DatabaseError, match="never rewritten"):
        store._conn.execute("UPDATE rounds SET n_labeled = 7")
    with pytest.raises(sqlite3.DatabaseError, match="never deleted"):
        store._conn.execute("DELETE FROM rounds")
    sup = SupervisedUnit("d", 0)
    assert store.add_supervised(sup, metrics={"test_accuracy": 0.9}, n_labeled=6, options={},
                                seconds=1.0)
    assert not store.add_supervised(sup, metrics={"test_accuracy": 0.1}, n_labeled=6,
                                    options={}, seconds=1.0)
    assert store.supervised("d")[0]["metrics"] == {"test_accuracy": 0.9}
    assert store.has_supervised(sup) and not store.has_supervised(SupervisedUnit("d", 1))


def test_conflicting_unit_options_are_refused(tmp_path):
    store = ResultStore(tmp_path)
    options = {"data": "/a.npz", "preset": "cpu", "rounds": 5, "device": "cpu"}
    store.register_unit(UNIT, options)
    store.register_unit(UNIT, {**options, "data": "/moved/a.npz", "device": "cuda"})
    with pytest.raises(ConfigError, match=r"rounds: 5 -> 3.*another --out"):
        store.register_unit(UNIT, {**options, "rounds": 3})


def test_a_gap_in_rounds_is_reported(tmp_path):
    store = ResultStore(tmp_path)
    store.add_round(UNIT, record_to_row(_record(0), IDS))
    store.add_round(UNIT, record_to_row(_record(2), IDS))
    with pytest.raises(DataError, match="round 2 stored but not round 1"):
        store.completed_rounds(UNIT)


def test_counts_failures_attempts_and_commands(tmp_path):
    store = ResultStore(tmp_path)
    for rnd in range(3):
        store.add_round(UNIT, record_to_row(_record(rnd), IDS))
    assert store.n_rounds() == {("d", "entropy", 2, 0): 3}
    store.add_failure(UNIT, "boom")
    store.add_attempt(UNIT, 1, {"task": "x"}, host="h")
    assert store.failures()[0]["message"] == "boom"
    assert store.attempts()[0]["from_round"] == 1
    assert store.commands() == []


def test_missing_database_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no results database"):
        ResultStore(tmp_path / "nothing", create=False)
    (tmp_path / "bad").mkdir()
    store_path(tmp_path / "bad").write_text("not sqlite")
    with pytest.raises(DataError, match="not a readable results database"):
        ResultStore(tmp_path / "bad")


def test_row_to_record_inverts_record_to_row():
    record = _record(1)
    back = row_to_record({**record_to_row(record, IDS), "round": 1})
    np.testing.assert_array_equal(back.queried_idx, record.queried_idx)
    assert back.n_labeled == record.n_labeled


def test_one_writer_per_folder(tmp_path):
    store = ResultStore(tmp_path)
    other = ResultStore(tmp_path)
    with (store.writer_lock(),
          pytest.raises(ConfigError, match=r"already running into this folder \(pid "),
          other.writer_lock()):
        pass
    with other.writer_lock():  # released
        pass
