"""The selection benchmark runs end to end on a tiny pool and prints the documented CSV."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "selection.py"


@pytest.mark.slow
def test_benchmark_prints_csv():
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} not found")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--n", "400", "--budget", "5",
                           "--n-labeled", "10", "--dim", "16", "--mc-samples", "3",
                           "--strategies", "badge", "coreset_l2", "entropy"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "strategy,n,impl,seconds,peak_mb"
    rows = [line.split(",") for line in lines[1:]]
    assert {(r[0], r[2]) for r in rows} == {("badge", "ours"), ("badge", "naive"),
                                            ("coreset_l2", "ours"), ("coreset_l2", "naive"),
                                            ("entropy", "ours")}
    for row in rows:
        assert row[1] == "400" and float(row[3]) >= 0 and float(row[4]) >= 0


@pytest.mark.slow
def test_benchmark_representativeness_group():
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} not found")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--n", "300", "--budget", "5",
                           "--n-labeled", "10", "--dim", "16", "--impls", "ours",
                           "--strategies", "representativeness"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split(",") for line in proc.stdout.strip().splitlines()[1:]]
    assert [r[0] for r in rows] == ["kmeans", "max_cover", "probcover", "facility_location"]
