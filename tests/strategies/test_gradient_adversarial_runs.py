"""End to end: egl, egl_entropy and dfal in ``medactive run`` (embedded PneumoniaMNIST, smoke
preset; dfal also in frozen mode on a tiny encoder), and dfal refused for segmentation."""

from __future__ import annotations

import pytest

from medactive.cli import main
from tests.strategies.runs import queried, smoke_run
from tests.tasks.classification.test_task_modes import write_tiny_encoder


@pytest.mark.slow
def test_dfal_runs_and_repeats_per_seed(tmp_path):
    assert smoke_run(tmp_path / "a", "--strategy", "dfal") == 0
    assert smoke_run(tmp_path / "b", "--strategy", "dfal") == 0
    assert len(queried(tmp_path / "a")) == 10
    assert queried(tmp_path / "a") == queried(tmp_path / "b")


@pytest.mark.slow
def test_dfal_in_frozen_mode_and_a_sampler_over_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDACTIVE_CACHE", str(tmp_path / "cache"))
    frozen = ("--encoder", str(write_tiny_encoder(tmp_path / "enc.pt")), "--train-mode",
              "frozen")
    assert smoke_run(tmp_path / "f", "--strategy", "dfal", *frozen) == 0
    assert len(queried(tmp_path / "f")) == 10
    assert smoke_run(tmp_path / "p", "--strategy", "power:dfal", *frozen) == 0
    assert len(queried(tmp_path / "p")) == 10


@pytest.mark.slow
@pytest.mark.parametrize("name", ["egl", "egl_entropy"])
def test_gradient_lengths_run(tmp_path, name):
    assert smoke_run(tmp_path / name, "--strategy", name) == 0
    assert len(queried(tmp_path / name)) == 10


@pytest.mark.slow
def test_dfal_and_egl_refused_for_segmentation(tmp_path, capsys):
    from tests.segmentation_data import write_h5_layout

    data = write_h5_layout(tmp_path / "acdc")
    args = ["run", "--data", str(data), "--initial", "4", "--budget", "2", "--rounds", "1",
            "--seed", "5", "--preset", "smoke", "--threads", "1"]
    assert main([*args, "--strategy", "dfal", "--out", str(tmp_path / "dfal")]) != 0
    assert "dfal is for classification" in capsys.readouterr().err
    assert main([*args, "--strategy", "egl", "--out", str(tmp_path / "egl")]) != 0
    assert "egl is for classification" in capsys.readouterr().err
