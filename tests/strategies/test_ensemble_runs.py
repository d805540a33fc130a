"""End to end: ``medactive run --ensemble-size M`` with the ensemble and QBC strategies
(embedded PneumoniaMNIST), and the one-line refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medactive.cli import main
from tests.strategies.runs import smoke_run


def _rows(path: Path, name: str) -> list[dict[str, str]]:
    with open(path / name) as fh:
        return list(csv.DictReader(fh))



@pytest.mark.parametrize("strategy", ["ensemble_bald", "power:ensemble_bald", "qbc_kl"])
def test_member_strategies_without_an_ensemble_are_refused_in_one_line(tmp_path, capsys,
                                                                       strategy):
    assert smoke_run(tmp_path / "a", "--strategy", strategy) != 0
    err = capsys.readouterr().err
    assert f"{strategy.split(':')[-1]} needs --ensemble-size 2 or more" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a" / "rounds.csv").exists()


def test_bad_ensemble_sizes_and_segmentation_are_refused(tmp_path, capsys):
    from tests.segmentation_data import write_h5_layout

    assert smoke_run(tmp_path / "a", "--strategy", "entropy", "--ensemble-size", "0") != 0
    assert "--ensemble-size" in capsys.readouterr().err
    data = write_h5_layout(tmp_path / "acdc")
    assert main(["run", "--data", str(data), "--initial", "4", "--budget", "2", "--rounds", "1",
                 "--preset", "smoke", "--strategy", "entropy", "--ensemble-size", "2",
                 "--out", str(tmp_path / "s")]) != 0
    assert "--ensemble-size is for classification only" in capsys.readouterr().err


@pytest.mark.slow
def test_ensemble_bald_runs_records_the_ensemble_and_repeats(tmp_path):
    args = ("--strategy", "ensemble_bald", "--ensemble-size", "3")
    assert smoke_run(tmp_path / "a", *args) == 0
    assert smoke_run(tmp_path / "b", *args) == 0
    for name in ("rounds.csv", "selections.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    rounds = _rows(tmp_path / "a", "rounds.csv")
    assert [r["ensemble_size"] for r in rounds] == ["3", "3"]
    assert len([r for r in _rows(tmp_path / "a", "selections.csv") if r["round"] == "1"]) == 10
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["config"]["train_options"] == {"ensemble_size": 3}
    assert info["task"]["ensemble"]["size"] == 3
    # a plain run has no such column (its rounds.csv is today's)
    assert smoke_run(tmp_path / "c", "--strategy", "entropy") == 0
    assert "ensemble_size" not in _rows(tmp_path / "c", "rounds.csv")[0]


@pytest.mark.slow
def test_qbc_and_ensemble_entropy_in_frozen_mode(tmp_path, monkeypatch):
    from tests.tasks.classification.test_task_modes import write_tiny_encoder

    monkeypatch.setenv("MEDACTIVE_CACHE", str(tmp_path / "cache"))
    enc = write_tiny_encoder(tmp_path / "enc.pt")
    frozen = ("--encoder", str(enc), "--train-mode", "frozen", "--ensemble-size", "2")
    for strategy in ("qbc_vote_entropy", "ensemble_entropy"):
        out = tmp_path / strategy
        assert smoke_run(out, "--strategy", strategy, *frozen) == 0
        assert len([r for r in _rows(out, "selections.csv") if r["round"] == "1"]) == 10
