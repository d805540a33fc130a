"""End to end: tta_kl in ``medactive run`` on the embedded PneumoniaMNIST and on an ACDC-layout
segmentation fixture, and the strategy's n_augmentations option recorded as run."""

from __future__ import annotations

import json

import pytest

from medactive.cli import main
from tests.strategies.runs import queried


@pytest.mark.slow
def test_tta_kl_runs_on_classification_and_repeats_per_seed(tmp_path):
    args = ["run", "--data", "default", "--preset", "smoke", "--initial", "20", "--budget", "10",
            "--rounds", "1", "--threads", "1", "--seed", "0", "--strategy", "tta_kl"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert len(queried(tmp_path / "a")) == 10
    assert queried(tmp_path / "a") == queried(tmp_path / "b")


@pytest.mark.slow
def test_tta_kl_runs_on_segmentation_slices(tmp_path):
    from tests.segmentation_data import write_h5_layout

    data = write_h5_layout(tmp_path / "acdc")
    out, config = tmp_path / "seg", tmp_path / "run.toml"
    config.write_text('strategy = "tta_kl"\n[strategy_options]\nn_augmentations = 4\n')
    assert main(["run", "--config", str(config), "--data", str(data), "--initial", "4",
                 "--budget", "2", "--rounds", "1", "--seed", "5", "--preset", "smoke",
                 "--threads", "1", "--out", str(out)]) == 0
    assert len(queried(out)) == 2
    text = json.dumps(json.loads((out / "run.json").read_text()))
    assert '"n_augmentations": 4' in text
