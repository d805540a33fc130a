"""scripts/collect_results.sh replaces only what `medactive report` writes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from medactive.bench.runner import run_grid
from medactive.bench.store import ResultStore
from tests.bench.fake_backend import fake_grid

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "collect_results.sh"


@pytest.mark.slow
def test_collect_keeps_hand_made_files(tmp_path):
    run = tmp_path / "runs" / "fake"
    with ResultStore(run) as store:
        run_grid(fake_grid(seeds=(0, 1), budgets=(5,)), store, command="medactive bench x")
    dest = tmp_path / "results" / "fake"
    (dest / "tables").mkdir(parents=True)
    (dest / "tables" / "stale.md").write_text("from an older report\n")
    (dest / "NOTES.md").write_text("a hand-written note\n")
    (dest / "per-run").mkdir()
    (dest / "per-run" / "rounds.csv").write_text("round\n0\n")
    env = {**os.environ, "RESULTS_DIR": str(tmp_path / "results"), "MPLBACKEND": "Agg"}
    subprocess.run(["bash", str(SCRIPT), str(run)], check=True, env=env,
                   capture_output=True, text=True)
    assert (dest / "NOTES.md").read_text() == "a hand-written note\n"
    assert (dest / "per-run" / "rounds.csv").exists()
    assert not (dest / "tables" / "stale.md").exists()   # the report's own folder is renewed
    assert (dest / "tables" / "fake_b5_accuracy.md").exists() and (dest / "report.md").exists()
