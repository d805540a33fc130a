"""CEAL in benchmark grids: ``+ceal`` strategy names, the ``pseudo_label`` table, the store."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from medactive.bench.config import (
    DatasetSpec,
    GridConfig,
    Unit,
    list_presets,
    load_grid,
    split_strategy,
)
from medactive.bench.runner import check_grid, run_grid
from medactive.bench.store import PSEUDO_COLUMNS, ResultStore, record_to_row
from medactive.errors import ConfigError
from medactive.loop.active_loop import RoundRecord
from tests.bench.ceal_backend import BACKEND

TOML = f"""
name = "ceal"
strategies = ["fake_uncertainty", "fake_uncertainty+ceal"]
seeds = [0]
rounds = 3
preset = "smoke"
supervised_seeds = 0
backend = "{BACKEND}"
pseudo_label = {{entropy = 0.5, decay = 0.05, max = 10}}

[[datasets]]
name = "fake"
data = "fake"
budgets = [5]
metrics = ["test_accuracy", "pseudo_label_accuracy"]
"""


def _grid(tmp_path: Path) -> GridConfig:
    path = tmp_path / "ceal.toml"
    path.write_text(TOML)
    return load_grid(path)


def _columns(store: ResultStore) -> set[str]:
    with sqlite3.connect(store.path) as conn:
        return {row[1] for row in conn.execute("PRAGMA table_info(rounds)")}


def test_split_strategy():
    assert split_strategy("entropy+ceal") == ("entropy", True)
    assert split_strategy("entropy") == ("entropy", False)


def test_ceal_units_get_the_pseudo_label_option_plain_ones_do_not(tmp_path):
    grid = _grid(tmp_path)
    plain, ceal = grid.units()
    assert ceal.strategy == "fake_uncertainty+ceal"
    assert "pseudo_label" not in grid.unit_options(plain)
    options = grid.unit_options(ceal)
    assert options["strategy"] == "fake_uncertainty"
    assert options["pseudo_label"] == {"entropy": 0.5, "decay": 0.05, "max": 10}
    defaults = GridConfig.from_dict({**grid.to_dict(), "pseudo_label": None})
    assert defaults.unit_options(ceal)["pseudo_label"] == {"entropy": 0.005, "decay": 0.00033,
                                                           "max": None}
    check_grid(grid)  # "+ceal" names are known strategies


@pytest.mark.parametrize("name", list_presets())
def test_presets_are_unchanged(name, tmp_path):
    grid = load_grid(name, data_root=tmp_path)
    assert grid.pseudo_label is None
    assert all("pseudo_label" not in grid.unit_options(u) for u in grid.units())


def test_bad_settings_are_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TOML.replace("max = 10", "max = 0"))
    with pytest.raises(ConfigError, match="max"):
        load_grid(path)
    path.write_text(TOML.replace("entropy = 0.5", "threshold = 0.5"))
    with pytest.raises(ConfigError, match="unknown key"):
        load_grid(path)
    with pytest.raises(ConfigError, match="classification only"):
        GridConfig(name="seg", strategies=("entropy+ceal",), seeds=(0,), datasets=(
            DatasetSpec(name="acdc", data="acdc", budgets=(10,), task="segmentation"),))


def test_grid_compares_with_and_without_and_resumes_exactly(tmp_path):
    grid = _grid(tmp_path)
    full = ResultStore(tmp_path / "full")
    assert run_grid(grid, full).failures == []
    plain, ceal = grid.units()
    plain_rows, ceal_rows = full.rounds(unit=plain), full.rounds(unit=ceal)
    assert all(r["pseudo_ids"] == [] and "n_pseudo" not in r["metrics"] for r in plain_rows)
    assert sum(len(r["pseudo_ids"]) for r in ceal_rows) > 0
    assert all(len(r["pseudo_ids"]) <= 10 for r in ceal_rows)
    for prev, row in itertools.pairwise(ceal_rows):
        assert row["pseudo_ids"] == prev["next_pseudo_ids"]
        assert row["metrics"]["n_pseudo"] == len(row["pseudo_ids"])
    # killed after round 1: the partial store has rounds 0 and 1; the rest is redone
    partial = ResultStore(tmp_path / "partial")
    for unit in (plain, ceal):
        for row in full.rounds(unit=unit)[:2]:
            partial.add_round(unit, row)
    assert run_grid(grid, partial).n_finished == 2
    keys = ("round", "n_labeled", "metrics", "added_ids", "queried_ids", "queried_scores",
            "pseudo_ids", "pseudo_labels", "next_pseudo_ids", "next_pseudo_labels")
    for unit in (plain, ceal):
        assert ([{k: r[k] for k in keys} for r in partial.rounds(unit=unit)]
                == [{k: r[k] for k in keys} for r in full.rounds(unit=unit)])


def _record(rnd: int, pseudo: bool) -> RoundRecord:
    empty = np.zeros(0, dtype=np.int64)
    return RoundRecord(round=rnd, n_labeled=2, metrics={"test_accuracy": 0.5},
                       added_idx=np.array([0, 1]), added_scores=np.full(2, np.nan),
                       queried_idx=np.array([2]), queried_scores=np.array([0.7]),
                       next_pseudo_idx=np.array([4, 3]) if pseudo else empty,
                       next_pseudo_labels=np.array([1, 0]) if pseudo else empty)


def test_columns_are_added_only_when_a_pseudo_round_is_stored(tmp_path):
    ids = np.array(["a", "b", "c", "d", "e"])
    store = ResultStore(tmp_path)
    store.add_round(Unit("d", "entropy", 2, 0), record_to_row(_record(0, False), ids))
    assert not set(PSEUDO_COLUMNS) & _columns(store)  # the previous schema, untouched
    store.add_round(Unit("d", "entropy+ceal", 2, 0), record_to_row(_record(0, True), ids))
    assert set(PSEUDO_COLUMNS) <= _columns(store)
    plain, ceal = store.rounds()
    assert plain["strategy"] == "entropy" and plain["next_pseudo_ids"] == []
    assert ceal["next_pseudo_ids"] == ["e", "d"] and ceal["next_pseudo_labels"] == [1, 0]
    record = store.completed_rounds(Unit("d", "entropy+ceal", 2, 0))[0]
    assert record.next_pseudo_idx.tolist() == [4, 3] and record.pseudo_idx.size == 0
    store.add_round(Unit("d", "entropy", 2, 1), record_to_row(_record(0, False), ids))
    assert store.rounds(unit=Unit("d", "entropy", 2, 1))[0]["pseudo_idx"] == []

