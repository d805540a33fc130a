"""`medactive run --resume` / `--overwrite`: an existing run is never replaced by accident,
and a run cut off after some rounds continues to the same files as an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

from medactive.cli import main

FILES = ("rounds.csv", "selections.csv")


def _run(out: Path, *extra: str, budget: str = "20") -> int:
    return main(["run", "--data", "default", "--strategy", "entropy", "--initial", "20",
                 "--budget", budget, "--rounds", "2", "--seed", "0", "--preset", "smoke",
                 "--threads", "1", "--out", str(out), *extra])


def test_existing_run_is_kept_unless_asked(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out) == 0
    before = {f: (out / f).read_bytes() for f in FILES}
    assert _run(out) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert {f: (out / f).read_bytes() for f in FILES} == before
    assert _run(out, "--resume") == 0
    assert "all 3 rounds already done" in capsys.readouterr().out
    assert _run(out, "--overwrite") == 0
    assert {f: (out / f).read_bytes() for f in FILES} == before  # same seed, same run


def test_resume_after_a_cut_off_round_equals_an_uninterrupted_run(tmp_path, capsys):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert _run(whole) == 0 and _run(cut) == 0
    # as if killed during round 1: rounds.csv (written last each round) holds round 0 only;
    # selections.csv already has the batch round 1 queried
    lines = (cut / "rounds.csv").read_text().splitlines(keepends=True)
    (cut / "rounds.csv").write_text("".join(lines[:2]))
    capsys.readouterr()
    assert _run(cut, "--resume") == 0
    out = capsys.readouterr().out
    assert "round 0: done before (20 labels)" in out and "round 1: 40 labels" in out
    for f in FILES:
        assert (cut / f).read_bytes() == (whole / f).read_bytes(), f


def test_resume_with_other_settings_names_them(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out) == 0
    capsys.readouterr()
    assert _run(out, "--resume", budget="10") == 2
    assert "budget: 20 -> 10" in capsys.readouterr().err


def test_resume_and_overwrite_exclude_each_other(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        _run(tmp_path / "run", "--resume", "--overwrite")
