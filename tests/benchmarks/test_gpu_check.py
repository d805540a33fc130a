"""benchmarks/gpu_check.sh and the selection benchmark's --selection-device (issue 16 part 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
SELECTION = ROOT / "benchmarks" / "selection.py"


def test_the_gpu_check_script_is_valid_bash():
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} not found")
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_gpu_check_script_refuses_an_unknown_argument():
    proc = subprocess.run(["bash", str(SCRIPT), "--fast"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gpu_check.sh: unknown argument --fast (use --dry-run or nothing)"]


@pytest.mark.slow
def test_the_selection_benchmark_runs_the_torch_backend():
    proc = subprocess.run([sys.executable, str(SELECTION), "--n", "300", "--budget", "4",
                           "--n-labeled", "10", "--dim", "8", "--impls", "ours",
                           "--strategies", "badge", "coreset_l2", "entropy",
                           "--selection-device", "torch-cpu"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split(",") for line in proc.stdout.strip().splitlines()[1:]]
    assert {(r[0], r[2]) for r in rows} == {("badge", "ours-torch-cpu"),
                                            ("coreset_l2", "ours-torch-cpu"),
                                            ("entropy", "ours-torch-cpu")}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_the_selection_benchmark_refuses_cuda_without_a_gpu():
    proc = subprocess.run([sys.executable, str(SELECTION), "--n", "300", "--impls", "ours",
                           "--strategies", "badge", "--selection-device", "cuda"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "--selection-device cuda: no CUDA device is available" in proc.stderr
    assert proc.stdout == ""
