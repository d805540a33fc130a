"""The converged fully supervised reference beside the budget-matched one (issue 15, item 13)."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest

from medactive.bench.config import SupervisedUnit, load_grid
from medactive.bench.report import build_report
from medactive.bench.runner import run_grid
from medactive.bench.store import ResultStore
from medactive.errors import ConfigError
from tests.bench.fake_backend import fake_grid


def _grid(**kw):
    return replace(fake_grid(seeds=(0, 1), budgets=(5,)),
                   converged_reference={"epochs": 7, "patience": 2}, **kw)


def test_grid_plans_both_references_with_their_options():
    grid = _grid()
    units = grid.supervised_units()
    assert units == [SupervisedUnit("fake", 0), SupervisedUnit("fake", 0, converged=True)]
    assert units[1].key == "fake/fully_supervised_converged/s0"
    plain, converged = (grid.unit_options(u) for u in units)
    assert converged["epochs"] == 7 and converged["train_options"]["patience"] == 2
    assert plain["epochs"] is None and "patience" not in plain["train_options"]


def test_converged_reference_is_stored_apart_and_reported_beside(tmp_path):
    with ResultStore(tmp_path) as store:
        run_grid(_grid(), store, command="medactive bench x")
        assert len(store.supervised()) == 1 and len(store.supervised(converged=True)) == 1
        assert run_grid(_grid(), store).n_finished == 0     # both found on a rerun
    build_report(tmp_path)
    table = (tmp_path / "report" / "tables" / "fake_b5_accuracy.md").read_text()
    assert "| Fully supervised, rounds' recipe |" in table
    assert "| Fully supervised, converged |" in table
    rows = list(csv.DictReader((tmp_path / "report" / "tables" / "fake_b5_accuracy.csv").open()))
    assert [r["strategy"] for r in rows][-2:] == ["fully_supervised",
                                                 "fully_supervised_converged"]
    refs = (tmp_path / "report" / "tables" / "references.md").read_text()
    assert "| fake | Fully supervised, converged | 1 | 60 | epoch 1 of 7 |" in refs


def test_a_store_with_references_only_has_a_report(tmp_path):
    with ResultStore(tmp_path) as store:
        run_grid(replace(_grid(), strategies=("fake_random",), seeds=(0,), rounds=0), store)
    assert (tmp_path / "report").exists() is False
    build_report(tmp_path)
    assert "Fully supervised references" in (tmp_path / "report" / "report.md").read_text()


def test_cpu_presets_have_a_converged_reference():
    for name in ("cpu-blood", "cpu-pneumonia", "cpu-retina", "cpu-acdc"):
        grid = load_grid(name, data_root="/d")
        assert grid.converged_reference is not None
        assert sum(u.converged for u in grid.supervised_units()) == 1


def test_patience_is_optional():
    grid = replace(fake_grid(), converged_reference={"epochs": 9})
    options = grid.unit_options(grid.supervised_units()[1])
    assert options["epochs"] == 9 and "patience" not in options["train_options"]


@pytest.mark.parametrize("bad", [{"epochs": 0, "patience": 2}, {"patience": 5},
                                 {"epochs": 5, "patience": 2, "x": 1}, "long"])
def test_bad_converged_reference_is_refused(bad):
    with pytest.raises(ConfigError, match="converged_reference"):
        replace(fake_grid(), converged_reference=bad)


def test_references_only_runs_no_al_unit(tmp_path, capsys):
    from medactive.cli import main
    from tests.bench.fake_backend import fake_toml

    config = tmp_path / "g.toml"
    config.write_text(fake_toml(name="refs", rounds=2).replace(
        'name = "refs"', 'name = "refs"\nconverged_reference = {epochs = 3, patience = 1}'))
    out = tmp_path / "out"
    assert main(["bench", "--config", str(config), "--out", str(out), "--references-only",
                 "--no-progress"]) == 0
    with ResultStore(out) as store:
        assert store.rounds() == []
        assert len(store.supervised()) == 1 and len(store.supervised(converged=True)) == 1
    assert main(["bench", "--config", str(config), "--out", str(out), "--references-only",
                 "--no-supervised"]) == 2
    assert "exclude each other" in capsys.readouterr().err
