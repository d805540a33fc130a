"""SIGKILL during ``project import`` (and ``project query``): the database stays sound, every
committed label survives, an interrupted import leaves none of its rows, and rerunning finishes.

The import subprocess reports each row it has written inside its transaction through a marker
file (``MEDACTIVE_TEST_IMPORT_MARK``) and sleeps a little after each (``..._DELAY``), so the
test can kill it at known points: before the transaction, after the first row, in the middle,
after the last row but before COMMIT, and after it finished.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from medactive.project.importer import DELAY_ENV, MARK_ENV, import_labels
from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project

from .conftest import write_csv, write_folder
from .killing import run_cli, start_cli, wait_for_row

N_ROWS = 20


def _start_import(proj: Path, csv: Path, mark: Path, delay: float) -> subprocess.Popen:
    return start_cli("project", "import", str(proj), str(csv),
                     **{DELAY_ENV: str(delay), MARK_ENV: str(mark)})


def _import_labels(proj: Path, ids: list[str]) -> dict[str, int]:
    conn = sqlite3.connect(proj / "project.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        marks = ",".join("?" * len(ids))
        rows = conn.execute(f"SELECT sample_id, value FROM labels WHERE sample_id IN ({marks}) "
                            "AND source = 'import'", ids).fetchall()
    finally:
        conn.close()
    return dict(rows)


@pytest.fixture
def setup(tmp_path):
    truth = write_folder(tmp_path / "images", n=N_ROWS + 6, subfolder_every=0)
    store = init_project(tmp_path / "proj", tmp_path / "images", classes=["a", "b"])
    ids = sorted(truth)
    # labels committed before the crash: must survive every kill
    committed = ids[:4]
    import_labels(store, write_csv(tmp_path / "first.csv",
                                   [(i, "ab"[truth[i]]) for i in committed]),
                  annotator="earlier")
    batch = ids[4:4 + N_ROWS]
    csv = write_csv(tmp_path / "batch.csv", [(i, "ab"[truth[i]]) for i in batch])
    store.close()
    return tmp_path / "proj", csv, committed, batch, truth


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["startup", 1, N_ROWS // 2, N_ROWS, "done"])
def test_sigkill_import(setup, tmp_path, kill_at):
    proj, csv, committed, batch, truth = setup
    mark = tmp_path / "mark"
    proc = _start_import(proj, csv, mark, delay=0.05)
    if kill_at == "startup":
        time.sleep(0.05)
    elif kill_at == "done":
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    else:
        wait_for_row(proc, mark, kill_at)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if kill_at not in ("startup", "done"):
        assert proc.returncode == -signal.SIGKILL

    store = ProjectStore(proj)
    assert store.integrity_check() == "ok"
    labels = store.current_labels()
    assert all(labels[i].value == truth[i] for i in committed)  # committed labels survive
    got = _import_labels(proj, batch)
    expected_all = kill_at == "done"
    if kill_at == "startup":
        expected_all = len(got) == len(batch)  # a slow start may not have been reached: either
    assert len(got) == (len(batch) if expected_all else 0), f"partial import: {len(got)} rows"
    store.close()

    # rerunning the command finishes the import (or finds nothing left to do)
    rerun = run_cli("project", "import", str(proj), str(csv), timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    got = _import_labels(proj, batch)
    assert got == {i: truth[i] for i in batch}
    assert sqlite3.connect(proj / "project.db").execute(
        "SELECT COUNT(*) FROM labels").fetchone()[0] == len(committed) + len(batch)


@pytest.fixture(scope="module")
def labelled_project(tmp_path_factory):
    """A project whose initial batch is labelled, and the batch an uninterrupted
    ``query --strategy margin --budget 3`` selects on it."""
    import shutil

    from medactive.project.workflow import query

    tmp = tmp_path_factory.mktemp("query")
    truth = write_folder(tmp / "images", n=16, subfolder_every=0)
    store = init_project(tmp / "proj", tmp / "images", classes=["a", "b"], preset="smoke",
                         initial=6)
    batch0 = query(store, strategy="random", budget=4)
    import_labels(store, write_csv(tmp / "l.csv",
                                   [(i, "ab"[truth[i]]) for i in batch0.sample_ids]))
    store.close()
    shutil.copytree(tmp / "proj", tmp / "ref")
    expected = query(ProjectStore(tmp / "ref"), strategy="margin", budget=3).sample_ids
    return tmp / "proj", expected


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["startup", "training", "trained"])
def test_sigkill_query_then_rerun_gives_the_same_batch(labelled_project, tmp_path, kill_at):
    """``project query`` killed during start-up, during training, or after its checkpoint is
    saved leaves a sound database and no partial batch; rerunning it selects what an
    uninterrupted query selects (reusing the checkpoint when it was saved)."""
    import shutil

    from medactive.project.workflow import MARK_ENV

    proj = tmp_path / "proj"
    shutil.copytree(labelled_project[0], proj)
    expected = labelled_project[1]
    mark = tmp_path / "mark"
    args = ["project", "query", str(proj), "--strategy", "margin", "--budget", "3", "--device",
            "cpu"]
    proc = start_cli(*args, **{MARK_ENV: str(mark)})
    if kill_at == "startup":
        time.sleep(0.5)
    else:
        deadline = time.monotonic() + 120
        while not (mark.is_file() and mark.read_text() == kill_at):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.002)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    store = ProjectStore(proj)
    assert store.integrity_check() == "ok"
    assert len(store.current_labels()) == 6
    rounds = [r["round"] for r in store.rounds()]
    assert rounds in ([0], [0, 1])  # never a half-stored batch
    assert store.batch(1) == [] or len(store.batch(1)) == 3
    if rounds == [0]:
        store.close()
        rerun = run_cli(*args)
        assert rerun.returncode == 0, rerun.stderr
        store = ProjectStore(proj)
    assert [q.sample_id for q in store.batch(1)] == expected
    assert len(store.models()) == 1
