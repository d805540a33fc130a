"""benchmarks/uncertainty_cost.py runs on a tiny tiled pool, prints its CSV and resumes."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "uncertainty_cost.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} not found")
    return subprocess.run([sys.executable, str(SCRIPT), *args], check=False,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cost_rows_ratios_and_resume(tmp_path):
    out = tmp_path / "cost.csv"
    args = ("--n", "300", "--preset", "smoke", "--n-labeled", "20", "--n-eval", "30",
            "--budget", "3", "--ensemble-size", "2", "--threads", "1", "--out", str(out),
            "--strategies", "egl", "ensemble_bald")
    proc = _run(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_text().splitlines()[0] == "strategy,n,training,fit_seconds,query_seconds"
    rows = list(csv.DictReader(proc.stdout.splitlines()))
    assert [(r["strategy"], r["training"]) for r in rows] == [
        ("entropy", "plain"), ("egl", "plain"), ("ensemble_bald", "ensemble")]
    assert rows[0]["query_ratio"] == rows[0]["total_ratio"] == "1.00"
    for row in rows:
        assert row["n"] == "300" and float(row["fit_seconds"]) > 0
        expected = float(row["query_seconds"]) / float(rows[0]["query_seconds"])
        assert float(row["query_ratio"]) == pytest.approx(expected, rel=0.05, abs=0.02)
    again = _run(*args)  # every row is there: nothing is trained or appended
    assert again.returncode == 0 and "fit" not in again.stderr
    assert out.read_text().count("\n") == 4 and again.stdout == proc.stdout
    # a row deleted from the file is measured again, and the ratios follow the new seconds
    lines = out.read_text().splitlines()
    out.write_text("\n".join(line for line in lines if not line.startswith("entropy,")) + "\n")
    third = _run(*args)
    assert third.returncode == 0 and out.read_text().count("\n") == 4
    assert [r["strategy"] for r in csv.DictReader(third.stdout.splitlines())] == [
        "entropy", "egl", "ensemble_bald"]


def test_unknown_strategy_is_one_line(tmp_path):
    proc = _run("--strategies", "nope", "--out", str(tmp_path / "x.csv"))
    assert proc.returncode == 2 and "nope" in proc.stderr and "Traceback" not in proc.stderr
