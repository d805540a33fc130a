"""End to end: DAL and VAAL in ``medactive run`` (embedded PneumoniaMNIST; DAL also on an
ACDC-layout segmentation fixture, on the U-Net's bottleneck features), and the same seed
giving the same picks."""

from __future__ import annotations

import pytest

from medactive.cli import main
from tests.strategies.runs import queried, smoke_run


@pytest.mark.slow
def test_dal_runs_and_repeats_per_seed(tmp_path):
    assert smoke_run(tmp_path / "a", "--strategy", "dal") == 0
    assert smoke_run(tmp_path / "b", "--strategy", "dal") == 0
    assert len(queried(tmp_path / "a")) == 10
    assert queried(tmp_path / "a") == queried(tmp_path / "b")


@pytest.mark.slow
def test_vaal_and_a_sampler_over_dal_run(tmp_path):
    assert smoke_run(tmp_path / "v", "--strategy", "vaal") == 0
    assert len(queried(tmp_path / "v")) == 10
    assert smoke_run(tmp_path / "p", "--strategy", "power:dal") == 0
    assert len(queried(tmp_path / "p")) == 10


@pytest.mark.slow
def test_dal_on_segmentation_slices_and_vaal_refused_there(tmp_path, capsys):
    from tests.segmentation_data import write_h5_layout

    data = write_h5_layout(tmp_path / "acdc")
    args = ["run", "--data", str(data), "--initial", "4", "--budget", "2", "--rounds", "1",
            "--seed", "5", "--preset", "smoke", "--threads", "1"]
    assert main([*args, "--strategy", "dal", "--out", str(tmp_path / "dal")]) == 0
    assert len(queried(tmp_path / "dal")) == 2
    assert main([*args, "--strategy", "vaal", "--out", str(tmp_path / "vaal")]) != 0
    assert "vaal is for classification" in capsys.readouterr().err
