"""The grid runner: resume, failures, local workers, a killed run, and Ray (on a fake task)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medactive.bench.config import DatasetSpec, GridConfig
from medactive.bench.runner import run_grid
from medactive.bench.store import ResultStore, store_path
from medactive.errors import ConfigError
from tests.bench.fake_backend import BACKEND, fake_grid, fake_toml

ROOT = Path(__file__).resolve().parents[2]
PYTHONPATH = os.pathsep.join([str(ROOT / "src"), str(ROOT)])


def snapshot(store: ResultStore) -> tuple[list, list]:
    """Everything that must reproduce: metrics and selections of every round, supervised runs."""
    rounds = [(r["dataset"], r["strategy"], r["budget"], r["seed"], r["round"], r["n_labeled"],
               r["metrics"], r["added_ids"], r["added_scores"], r["queried_ids"],
               r["queried_scores"]) for r in store.rounds()]
    supervised = [(r["dataset"], r["seed"], r["metrics"]) for r in store.supervised()]
    return rounds, supervised


def test_grid_runs_every_round_and_a_rerun_skips_them(tmp_path):
    grid = fake_grid()
    store = ResultStore(tmp_path)
    result = run_grid(grid, store)
    assert (result.n_units, result.n_finished, result.failures) == (5, 5, [])
    assert len(store.rounds()) == 4 * 4 and len(store.supervised()) == 1
    first = snapshot(store)
    again = run_grid(grid, store)
    assert (again.n_skipped, again.n_finished) == (5, 0)
    assert snapshot(store) == first
    assert len(store.attempts()) == 5  # nothing restarted


def test_same_seed_same_initial_set_for_every_strategy(tmp_path):
    store = ResultStore(tmp_path)
    run_grid(fake_grid(supervised_seeds=0), store)
    rows = store.rounds(round=0)
    by_seed = {}
    for row in rows:
        by_seed.setdefault(row["seed"], set()).add(tuple(row["added_ids"]))
    assert all(len(sets) == 1 for sets in by_seed.values()) and len(by_seed) == 2


def test_a_partial_unit_resumes_from_its_first_missing_round(tmp_path):
    grid = fake_grid(seeds=(0,), supervised_seeds=0)
    full = ResultStore(tmp_path / "full")
    run_grid(grid, full)
    partial = ResultStore(tmp_path / "partial")
    unit = grid.units()[1]
    for row in full.rounds(unit=unit)[:2]:  # as if killed during round 2
        partial.add_round(unit, row)
    result = run_grid(grid, partial)
    assert result.n_finished == 2
    assert snapshot(partial) == snapshot(full)
    assert {a["unit"]: a["from_round"] for a in partial.attempts()}[unit.key] == 2


def test_a_failing_unit_is_recorded_and_the_grid_goes_on(tmp_path):
    grid = GridConfig(
        name="mixed", strategies=("fake_random",), seeds=(0,), rounds=1, backend=BACKEND,
        supervised_seeds=0, datasets=(
            DatasetSpec(name="bad", data="x", budgets=(5,), data_options={"fail": True}),
            DatasetSpec(name="good", data="x", budgets=(5,))))
    store = ResultStore(tmp_path)
    result = run_grid(grid, store)
    assert result.n_finished == 1
    message = "RuntimeError: this dataset always fails"
    assert result.failures == [("bad/fake_random/b5/s0", message)]
    assert "Traceback" in store.failures()[0]["message"]
    assert len(store.rounds(dataset="good")) == 2


def test_too_large_a_budget_fails_its_unit_with_a_clear_message(tmp_path):
    grid = fake_grid(seeds=(0,), budgets=(25,), strategies=("fake_random",), supervised_seeds=0)
    result = run_grid(grid, ResultStore(tmp_path))
    assert "more than the pool's 60 samples" in result.failures[0][1]


def test_a_changed_pool_is_refused(tmp_path):
    grid = fake_grid(seeds=(0,), strategies=("fake_random",), supervised_seeds=0)
    store = ResultStore(tmp_path / "a")
    run_grid(grid, store)
    row = dict(store.rounds()[0], added_ids=["zzz"] * 5)
    other = ResultStore(tmp_path / "b")
    other.add_round(grid.units()[0], row)
    result = run_grid(grid, other)
    assert "did the dataset change" in result.failures[0][1]


def test_unknown_strategy_is_refused_before_anything_runs(tmp_path):
    grid = fake_grid(strategies=("fake_random", "nope"))
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        run_grid(grid, ResultStore(tmp_path))


def test_composed_strategy_names_pass_the_grid_check_and_bad_ones_name_the_part(tmp_path):
    from medactive.bench.runner import check_grid

    check_grid(fake_grid(strategies=("power:margin", "hybrid:margin+kmeans",
                                     "fusion:margin+bald")))
    with pytest.raises(ConfigError, match="dataset .*unknown sampler 'nosuch'"):
        run_grid(fake_grid(strategies=("fake_random", "nosuch:margin")), ResultStore(tmp_path))
    with pytest.raises(ConfigError, match="'kmeans' is not a score"):
        check_grid(fake_grid(strategies=("topk:kmeans",)))


def test_other_options_for_stored_units_are_refused(tmp_path):
    store = ResultStore(tmp_path)
    run_grid(fake_grid(seeds=(0,), supervised_seeds=0), store)
    with pytest.raises(ConfigError, match="rounds: 3 -> 4"):
        run_grid(fake_grid(seeds=(0,), rounds=4, supervised_seeds=0), store)


@pytest.mark.slow
def test_local_worker_processes_match_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    grid = fake_grid()
    serial = ResultStore(tmp_path / "serial")
    run_grid(grid, serial)
    pooled = ResultStore(tmp_path / "pooled")
    result = run_grid(grid, pooled, workers=2, threads=1)
    assert result.failures == [] and result.n_finished == 5
    assert snapshot(pooled) == snapshot(serial)




def _bench(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    return subprocess.Popen([sys.executable, "-m", "medactive.cli", "bench", "--config",
                             str(config), "--out", str(out), "--no-progress", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_rows(out: Path, n: int, proc: subprocess.Popen, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"bench ended before it was killed:\n{proc.stdout.read()}")
        if store_path(out).exists():
            with ResultStore(out) as store:
                count = len(store.rounds())
            if count >= n:
                return count
        time.sleep(0.05)
    pytest.fail("bench made no progress")


@pytest.mark.slow
@pytest.mark.parametrize("sig, workers", [(signal.SIGKILL, "1"), (signal.SIGTERM, "2")])
def test_a_killed_bench_resumes_to_the_uninterrupted_result(tmp_path, sig, workers):
    config = tmp_path / "grid.toml"
    config.write_text(fake_toml(name="killable", rounds=3, sleep=0.15))
    reference = _bench(config, tmp_path / "reference")
    assert reference.wait(timeout=120) == 0, reference.stdout.read()

    killed_dir = tmp_path / "killed"
    proc = _bench(config, killed_dir, "--workers", workers)
    at_kill = _wait_rows(killed_dir, 5, proc)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    with ResultStore(killed_dir) as store:
        stored = len(store.rounds())
    assert at_kill <= stored < 16, "the kill must land mid-grid"

    rerun = _bench(config, killed_dir, "--workers", workers)
    output = rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 0, output
    with ResultStore(killed_dir) as a, ResultStore(tmp_path / "reference") as b:
        assert snapshot(a) == snapshot(b)
        assert len(a.rounds()) == 16
        resumed = [x for x in a.attempts() if x["from_round"] > 0]
    assert resumed or stored % 4 == 0  # a unit cut mid-way resumed from its stored rounds


@pytest.mark.slow
def test_a_two_unit_grid_on_a_local_ray_instance(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)  # Ray workers must import the fake backend
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    grid = fake_grid(seeds=(0,), supervised_seeds=0)
    assert len(grid.units()) == 2
    serial = ResultStore(tmp_path / "serial")
    run_grid(grid, serial)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        on_ray = ResultStore(tmp_path / "ray")
        result = run_grid(grid, on_ray, ray_address="local")
    finally:
        ray.shutdown()
    assert result.failures == [] and result.n_finished == 2
    assert snapshot(on_ray) == snapshot(serial)
    assert {a["describe"]["task"] for a in on_ray.attempts()} == {"fake"}
