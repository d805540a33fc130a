"""medactive.query_device, ``--selection-device`` (issue 16 part 4): numpy by default, CUDA
tensors when asked, one clear line when CUDA is asked on a machine without it."""

from __future__ import annotations

import pytest
import torch

from medactive.cli import main
from medactive.errors import ConfigError
from medactive.experiment import ExperimentConfig
from medactive.query_device import array_device

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def test_cpu_is_numpy_and_the_default():
    assert array_device("cpu") is None
    config = ExperimentConfig(data="default", strategy="badge", initial=1, budget=1, rounds=0)
    assert config.to_dict()["selection_device"] == "cpu"  # what run.json records


def test_an_unknown_device_is_one_clear_error():
    with pytest.raises(ConfigError, match="--selection-device must be one of cpu, cuda"):
        array_device("gpu")


@needs_no_cuda
def test_cuda_without_a_gpu_is_refused_in_one_line(tmp_path, capsys):
    code = main(["run", "--data", "default", "--strategy", "badge", "--initial", "5",
                 "--budget", "5", "--rounds", "1", "--out", str(tmp_path / "run"),
                 "--selection-device", "cuda", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err == [("medactive: error: --selection-device cuda: no CUDA device is available "
                    "(torch.cuda.is_available() is False); use --selection-device cpu")]
    assert not (tmp_path / "run" / "rounds.csv").exists()


def test_the_flag_reaches_the_run_settings():
    from medactive.cli import build_parser
    from medactive.commands.run import run_settings

    args = build_parser().parse_args(["run", "--data", "default", "--strategy", "badge",
                                      "--initial", "5", "--budget", "5", "--rounds", "1",
                                      "--out", "x", "--selection-device", "cuda"])
    args.argv = None
    assert run_settings(args).selection_device == "cuda"


def test_a_bench_grid_carries_the_switch_to_its_units():
    from medactive.bench.config import load_grid

    grid = load_grid("smoke-bench").with_overrides(selection_device="cuda")
    unit = next(iter(grid.units()))
    assert grid.unit_options(unit)["selection_device"] == "cuda"
    assert load_grid("smoke-bench").unit_options(unit)["selection_device"] == "cpu"

