"""benchmarks/frozen_vs_finetune.py runs both modes on a tiny pool and prints the documented CSV."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "frozen_vs_finetune.py"


def _tiny_rgb(path: Path) -> Path:
    """A 40/10/10 MedMNIST-layout set of 28 px RGB images, 3 classes (a bright stripe each)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 40), ("val", 10), ("test", 10)):
        labels = np.arange(n) % 3
        images = rng.integers(0, 60, (n, 28, 28, 3), dtype=np.uint8)
        for i, y in enumerate(labels):
            images[i, :, 9 * y:9 * (y + 1)] += 150
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels.reshape(-1, 1).astype(np.uint8)
    np.savez(path, **arrays)
    return path


@pytest.mark.slow
def test_script_prints_seconds_per_mode_and_ratio(tmp_path):
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} not found")
    data = _tiny_rgb(tmp_path / "tiny.npz")
    encoder = tmp_path / "enc.pt"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--data", str(data), "--encoder",
                           str(encoder), "--preset", "smoke", "--pretrain-epochs", "1",
                           "--width", "8", "--budget", "4", "--rounds", "1", "--threads", "1"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert encoder.is_file()  # pretrained where --encoder pointed, for the next call
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "mode,models,seconds,seconds_per_model,test_accuracy"
    rows = {r[0]: r for r in (line.split(",") for line in lines[1:3])}
    assert set(rows) == {"frozen", "finetune"}
    for mode, models, seconds, per_model, metric in rows.values():
        assert models == "2"  # initial + 1 round
        assert float(per_model) == pytest.approx(float(seconds) / 2, abs=0.01)
        assert 0.0 <= float(metric) <= 1.0
    name, what, ratio = lines[3].split(",")
    assert (name, what) == ("ratio", "finetune_over_frozen")
    # the seconds are printed to 0.01 s and the ratio to 0.01: on a sub-second smoke run the
    # rounding alone moves the ratio recomputed from the printed seconds by several percent
    fine, froz = float(rows["finetune"][2]), float(rows["frozen"][2])
    low = (fine - 0.005) / (froz + 0.005) - 0.005
    high = (fine + 0.005) / max(froz - 0.005, 1e-9) + 0.005
    assert low <= float(ratio) <= high


def test_missing_data_is_one_line(tmp_path):
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} not found")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--data", str(tmp_path / "none.npz")],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "none.npz not found" in proc.stderr
    assert "Traceback" not in proc.stderr
