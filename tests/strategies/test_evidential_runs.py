"""End to end: ``medactive run --evidential`` with the evidential strategies (embedded
PneumoniaMNIST, finetune and frozen), and the one-line refusals."""

from __future__ import annotations

import json

import pytest

from medactive.cli import main
from tests.strategies.runs import queried, smoke_run


@pytest.mark.slow
def test_evidential_runs_is_recorded_and_repeats_per_seed(tmp_path):
    assert smoke_run(tmp_path / "a", "--strategy", "evidential", "--evidential") == 0
    assert smoke_run(tmp_path / "b", "--strategy", "evidential", "--evidential") == 0
    assert len(queried(tmp_path / "a")) == 10
    assert queried(tmp_path / "a") == queried(tmp_path / "b")
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["config"]["train_options"]["evidential"] is True
    assert info["task"]["training"]["evidential"] is True
    # the run repeats from its own record
    assert main(["run", "--config", str(tmp_path / "a" / "run.json"),
                 "--out", str(tmp_path / "c")]) == 0
    assert queried(tmp_path / "c") == queried(tmp_path / "a")


@pytest.mark.slow
def test_epistemic_and_a_sampler_over_evidential_in_frozen_mode(tmp_path, monkeypatch):
    from tests.tasks.classification.test_task_modes import write_tiny_encoder

    monkeypatch.setenv("MEDACTIVE_CACHE", str(tmp_path / "cache"))
    encoder = write_tiny_encoder(tmp_path / "enc.pt")
    frozen = ("--encoder", str(encoder), "--train-mode", "frozen", "--evidential")
    assert smoke_run(tmp_path / "e", "--strategy", "evidential_epistemic", *frozen) == 0
    assert len(queried(tmp_path / "e")) == 10
    info = json.loads((tmp_path / "e" / "run.json").read_text())
    assert info["task"]["head"]["evidential"] is True
    assert smoke_run(tmp_path / "p", "--strategy", "power:evidential", "--evidential") == 0
    assert len(queried(tmp_path / "p")) == 10


def test_evidential_strategy_without_the_flag_is_one_line(tmp_path, capsys):
    assert smoke_run(tmp_path / "x", "--strategy", "evidential") != 0
    err = capsys.readouterr().err
    assert "need --evidential" in err and "Traceback" not in err


def test_evidential_refused_with_fixmatch_and_for_segmentation(tmp_path, capsys):
    from tests.segmentation_data import write_h5_layout

    assert smoke_run(tmp_path / "f", "--strategy", "entropy", "--evidential",
                "--semi-supervised", "fixmatch") != 0
    assert "--evidential with --semi-supervised" in capsys.readouterr().err
    data = write_h5_layout(tmp_path / "acdc")
    assert main(["run", "--data", str(data), "--initial", "4", "--budget", "2", "--rounds",
                 "1", "--preset", "smoke", "--strategy", "entropy", "--evidential",
                 "--out", str(tmp_path / "s")]) != 0
    assert "--evidential is for classification" in capsys.readouterr().err


def test_dirichlet_alpha_of_a_plain_model_is_refused_in_one_line():
    import numpy as np

    from medactive.errors import ConfigError
    from medactive.tasks.classification.head import FeatureIdentity
    from medactive.tasks.classification.model import Classifier
    from medactive.tasks.evidential import dirichlet_alpha_provider

    model = Classifier(FeatureIdentity(3), 2)
    provide = dirichlet_alpha_provider(model, features=np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ConfigError, match="need --evidential"):
        provide(np.arange(4))
    model.evidential = True
    assert provide(np.arange(4)).shape == (4, 2)


GRID = """
name = "edl"
strategies = ["evidential", "evidential_epistemic"]
seeds = [0]
[[datasets]]
name = "pneu-edl"
data = "default"
budgets = [10]
[datasets.train_options]
evidential = true
"""


def test_a_bench_grid_sets_evidential_per_dataset(tmp_path):
    from medactive.bench.config import load_grid
    from medactive.errors import ConfigError
    from medactive.experiment import ExperimentConfig, check_training_options

    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    grid = load_grid(path)
    options = grid.unit_options(grid.units()[0])
    assert options["train_options"] == {"evidential": True}
    check_training_options(ExperimentConfig(**options))
    bad = {**options, "train_options": {"evidential": "yes"}}
    with pytest.raises(ConfigError, match="evidential.*true or false"):
        check_training_options(ExperimentConfig(**bad))
