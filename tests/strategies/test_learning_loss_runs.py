"""End to end: ``medactive run --strategy learning_loss --learning-loss`` (embedded
PneumoniaMNIST, finetune and frozen mode; an ACDC-layout segmentation fixture), the same seed
giving the same picks, and the one-line refusals."""

from __future__ import annotations

import json

import pytest

from medactive.cli import main
from tests.strategies.runs import queried, smoke_run
from tests.tasks.classification.test_task_modes import write_tiny_encoder


@pytest.mark.slow
def test_learning_loss_runs_repeats_per_seed_and_is_recorded(tmp_path):
    args = ("--strategy", "learning_loss", "--learning-loss")
    assert smoke_run(tmp_path / "a", *args) == 0
    assert smoke_run(tmp_path / "b", *args) == 0
    assert len(queried(tmp_path / "a")) == 10
    assert queried(tmp_path / "a") == queried(tmp_path / "b")
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["config"]["train_options"] == {"learning_loss": True}
    assert info["task"]["training"]["learning_loss"] is True
    assert smoke_run(tmp_path / "p", "--strategy", "power:learning_loss", "--learning-loss") == 0
    assert len(queried(tmp_path / "p")) == 10


def test_refusals_are_one_line(tmp_path, capsys):
    assert smoke_run(tmp_path / "x", "--strategy", "learning_loss") != 0
    err = capsys.readouterr().err
    assert "learning_loss needs --learning-loss" in err and "Traceback" not in err
    assert smoke_run(tmp_path / "y", "--strategy", "learning_loss", "--learning-loss",
                "--semi-supervised", "fixmatch") != 0
    assert "--learning-loss with --semi-supervised is not supported" in capsys.readouterr().err
    config = tmp_path / "run.toml"
    config.write_text('data = "default"\nstrategy = "learning_loss"\ninitial = 20\n'
                      'budget = 10\nrounds = 1\n[train_options]\nlearning_loss = "yes"\n')
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "z")]) != 0
    assert "learning_loss must be true or false" in capsys.readouterr().err


@pytest.mark.slow
def test_learning_loss_on_segmentation_slices(tmp_path):
    from tests.segmentation_data import write_h5_layout

    data = write_h5_layout(tmp_path / "acdc")
    args = ["run", "--data", str(data), "--initial", "4", "--budget", "2", "--rounds", "1",
            "--seed", "5", "--preset", "smoke", "--threads", "1", "--strategy",
            "learning_loss", "--learning-loss"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert len(queried(tmp_path / "a")) == 2
    assert queried(tmp_path / "a") == queried(tmp_path / "b")
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["config"]["train_options"] == {"learning_loss": True}


@pytest.mark.slow
def test_learning_loss_in_frozen_mode_on_an_mlp_head(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDACTIVE_CACHE", str(tmp_path / "cache"))
    encoder = write_tiny_encoder(tmp_path / "enc.pt")
    frozen = ("--encoder", str(encoder), "--train-mode", "frozen", "--head", "mlp")
    args = ("--strategy", "learning_loss", "--learning-loss", *frozen)
    assert smoke_run(tmp_path / "a", *args) == 0
    assert smoke_run(tmp_path / "b", *args) == 0
    assert len(queried(tmp_path / "a")) == 10
    assert queried(tmp_path / "a") == queried(tmp_path / "b")


def test_a_grid_sets_learning_loss_for_its_units(tmp_path):
    from medactive.bench.config import load_grid
    from medactive.experiment import ExperimentConfig, build_task, check_training_options

    path = tmp_path / "grid.toml"
    path.write_text('name = "ll"\nstrategies = ["random", "learning_loss"]\nseeds = [0]\n'
                    'initial = 10\nrounds = 1\npreset = "smoke"\n[[datasets]]\nname = "d"\n'
                    'data = "default"\nbudgets = [10]\n[datasets.train_options]\n'
                    'learning_loss = true\n')
    grid = load_grid(path)
    for unit in grid.units():
        options = grid.unit_options(unit)
        assert options["train_options"] == {"learning_loss": True}
        check_training_options(ExperimentConfig(**options))  # accepted, no error
    # and it reaches the training recipe the task trains with
    assert build_task(ExperimentConfig(**options)).config.learning_loss is True
