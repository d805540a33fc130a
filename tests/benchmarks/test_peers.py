"""benchmarks/peers.py: the documented CSV, each peer's call at a tiny n, identical inputs."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "peers.py"
#: a tiny pool: 300 points of 16 dims, 10 labeled, budget 5 (BatchBALD: 3), T = 4
TINY = ("--n", "300", "--budget", "5", "--batchbald-budget", "3", "--n-labeled", "10",
        "--dim", "16", "--mc-samples", "4", "--num-draw", "20", "--repeats", "1")


def _load():
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} not found")
    spec = importlib.util.spec_from_file_location("bench_peers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    _load()
    return subprocess.run([sys.executable, str(SCRIPT), *TINY, *args], check=False,
                          capture_output=True, text=True, timeout=timeout)


def _peer_python(peers, impl: str) -> str:
    """The interpreter peers.py runs ``impl`` with, or skip where the peer does not import."""
    python = peers.python_for(impl, argparse.Namespace(peers_python=None))
    module = {"scikit-activeml": "skactiveml.pool", "baal": "baal.active.heuristics"}[impl]
    probe = subprocess.run([python, "-c", f"import {module}"], check=False, capture_output=True,
                           text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"{impl} does not import in {python} (run scripts/setup-peers.sh to make "
                    ".venv-peers): " + (probe.stderr.strip().splitlines() or ["?"])[-1])
    return python


@pytest.mark.slow
def test_medactive_rows_in_the_documented_csv():
    proc = _run("--impls", "medactive")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "step,n,impl,seconds,peak_mb"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == ["badge", "coreset", "typiclust", "probcover", "bald",
                                    "batchbald"]
    for row in rows:
        assert row[1] == "300" and row[2] == "medactive"
        assert float(row[3]) >= 0 and float(row[4]) >= 0
    assert "badge n=300: medactive" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("impl,steps", [
    ("scikit-activeml", ("badge", "coreset", "typiclust", "probcover")),
    ("baal", ("bald", "batchbald")),
])
def test_peer_wrappers_at_tiny_n(impl, steps):
    peers = _load()
    python = _peer_python(peers, impl)
    proc = _run("--steps", *steps, "--peers-python", python)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split(",") for line in proc.stdout.strip().splitlines()[1:]]
    assert [(r[0], r[2]) for r in rows] == [(s, i) for s in steps for i in ("medactive", impl)]
    assert all(r[3] != "nan" for r in rows), rows
    for step in steps:  # both measured, so the ratio line is there
        assert f"ratio medactive/{impl}" in next(
            line for line in proc.stderr.splitlines() if line.startswith(f"{step} n=300:"))


def _args(peers, **kw) -> argparse.Namespace:
    base = {"budget": 5, "batchbald_budget": 3, "n_labeled": 10, "dim": 16, "classes": 9,
            "mc_samples": 4, "seed": 0, "num_draw": 20, "threads": 1}
    return argparse.Namespace(**{**base, **kw})


def test_specs_of_a_step_differ_only_in_impl():
    peers = _load()
    args = _args(peers)
    for step, (_, peer) in peers.STEPS.items():
        ours, theirs = peers.make_spec(step, 300, "medactive", args), peers.make_spec(
            step, 300, peer, args)
        assert {k: v for k, v in ours.items() if k != "impl"} == {
            k: v for k, v in theirs.items() if k != "impl"}
    assert peers.make_spec("batchbald", 300, "baal", args)["args"]["budget"] == 3
    assert peers.make_spec("bald", 300, "baal", args)["args"]["budget"] == 5


def test_same_seed_same_arrays_other_seed_other_arrays():
    peers = _load()
    spec = peers.make_spec("badge", 300, "medactive", _args(peers))
    other = peers.make_spec("badge", 300, "medactive", _args(peers, seed=1))
    assert peers.digest(spec) == peers.digest(dict(spec)) != peers.digest(other)


@pytest.mark.slow
@pytest.mark.parametrize("step,impl", [("badge", "scikit-activeml"), ("bald", "baal")])
def test_peer_interpreter_builds_byte_identical_inputs(step, impl):
    peers = _load()
    python = _peer_python(peers, impl)
    spec = json.dumps(peers.make_spec(step, 300, impl, _args(peers)))
    theirs = subprocess.run([python, str(SCRIPT), "--digest", spec], capture_output=True,
                            text=True, timeout=120, check=True).stdout.strip()
    assert theirs == peers.digest(json.loads(spec))


def test_probcover_peer_skipped_where_dense_matrices_do_not_fit():
    peers = _load()
    args = argparse.Namespace(peer_max_gb=8.0)
    assert peers.peer_fits("probcover", 10_000, args)  # 0.8 GB
    assert not peers.peer_fits("probcover", 90_000, args)  # 65 GB
    assert peers.peer_fits("badge", 90_000, args)
