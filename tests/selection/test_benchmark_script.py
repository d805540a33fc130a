"""The selection benchmark runs end to end on a tiny pool and prints the documented CSV."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "selection.py"


def _run_script(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python benchmarks/selection.py ARGS`` (skips where the checkout has no benchmarks)."""
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} not found")
    return subprocess.run([sys.executable, str(SCRIPT), *args], check=False,
                          capture_output=True, text=True, timeout=timeout)


def _load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_selection", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_benchmark_prints_csv():
    proc = _run_script("--n", "400", "--budget", "5", "--n-labeled", "10", "--dim", "16",
                       "--mc-samples", "3", "--strategies", "badge", "coreset_l2", "entropy")
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
    proc = _run_script("--n", "300", "--budget", "5", "--n-labeled", "10", "--dim", "16",
                       "--impls", "ours", "--strategies", "representativeness")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split(",") for line in proc.stdout.strip().splitlines()[1:]]
    assert [r[0] for r in rows] == ["kmeans", "max_cover", "probcover", "facility_location"]


@pytest.mark.slow
def test_benchmark_samplers_group_and_composed_names():
    proc = _run_script("--n", "2000", "--budget", "20", "--n-labeled", "20", "--dim", "16",
                       "--impls", "ours", "--strategies", "samplers", "topk:entropy", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "strategy,n,impl,seconds,peak_mb"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == [
        "power:margin", "softmax:margin", "rank:margin", "stochastic_batches:margin",
        "cluster:margin", "kdpp:margin", "class_balanced:margin", "clasp:margin",
        "hybrid:margin+kmeans", "fusion:margin+entropy", "topk:entropy"]
    for row in rows:
        assert row[1] == "2000" and row[2] == "ours" and float(row[3]) >= 0 \
            and float(row[4]) >= 0


@pytest.mark.slow
def test_benchmark_unknown_strategy_is_one_line():
    proc = _run_script("--n", "300", "--impls", "ours", "--strategies", "nope:margin")
    assert proc.returncode != 0
    assert "nope" in proc.stderr and "Traceback" not in proc.stderr


def test_make_inputs_builds_unknown_fields_as_unit_scores():
    import argparse

    args = argparse.Namespace(seed=0, classes=3, dim=4, mc_samples=2, n_labeled=5)
    out = _load_script().make_inputs(50, ("some_score_unlabeled",), args)
    score = out["fields"]["some_score_unlabeled"]
    assert set(out["fields"]) == {"some_score_unlabeled"}
    assert score.shape == (50,) and score.dtype == np.float32
    assert score.min() >= 0.0 and score.max() < 1.0 and np.unique(score).size == 50
    assert out["labeled"].size == 5 and out["unlabeled"].size == 45


def test_make_inputs_builds_member_and_augmentation_stacks_and_dirichlet_parameters():
    import argparse

    args = argparse.Namespace(seed=0, classes=3, dim=4, mc_samples=2, n_labeled=5)
    fields = _load_script().make_inputs(
        40, ("member_probas", "tta_probas", "dirichlet_alpha"), args)["fields"]
    for name in ("member_probas", "tta_probas"):
        assert fields[name].shape == (40, 3, 2)
        np.testing.assert_allclose(fields[name].sum(axis=1), 1.0, rtol=1e-5)
    assert fields["dirichlet_alpha"].shape == (40, 3) and fields["dirichlet_alpha"].min() > 1.0
