"""``medactive bench`` and ``medactive report`` end to end (fake grid; smoke-bench if data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medactive.bench.config import Unit
from medactive.bench.store import ResultStore
from medactive.cli import main
from tests.bench.fake_backend import fake_toml


@pytest.fixture
def fake_config(tmp_path) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(fake_toml(name="fake-cli", rounds=2))
    return path


def test_list_and_describe_presets(capsys):
    assert main(["bench", "--list-presets"]) == 0
    out = capsys.readouterr().out
    assert "smoke-bench" in out and "survey-acdc" in out and "cpu-blood" in out
    assert main(["bench", "--config", "cpu-pneumonia", "--describe", "--data-root", "/d"]) == 0
    out = capsys.readouterr().out
    assert "Deviations from §6.1" in out and "/d/medmnist/pneumoniamnist.npz" in out
    assert "30 AL units + 2 supervised" in out  # 9 methods + random_balanced; 2 references


def test_list_presets_gives_whole_summaries(capsys):
    # cpu-blood's summary spans two docstring lines ("... the CPU analogue of" / "Table 6 (...)"):
    # the listing must carry on to the end of the paragraph, never stop mid-sentence
    from medactive.bench.config import describe_preset, list_presets

    assert main(["bench", "--list-presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = list_presets()
    starts = [i for i, line in enumerate(lines) if line.split(" ", 1)[0] in names]
    assert [lines[i].split(" ", 1)[0] for i in starts] == names
    indent = lines[starts[0]].index(lines[starts[0]].split()[1])
    for k, i in enumerate(starts):
        entry = lines[i:starts[k + 1] if k + 1 < len(starts) else len(lines)]
        assert entry[0][indent - 1] == " " and all(line[:indent].strip() == ""
                                                   for line in entry[1:])  # aligned column
        summary = " ".join(describe_preset(names[k]).split("\n\n")[0].split())
        assert " ".join(" ".join(line[indent:] for line in entry).split()) == summary
    blood = " ".join(lines[starts[names.index("cpu-blood")]:starts[names.index("cpu-blood") + 1]])
    assert blood.rstrip().endswith("a low and a high budget).")
    assert all(len(line) <= 100 for line in lines)


def test_bench_then_report(tmp_path, fake_config, capsys):
    out = tmp_path / "out"
    assert main(["bench", "--config", str(fake_config), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "[1/5] fake b=5 seed=0 fake_random: test_accuracy" in text
    assert "5 units: 5 finished now" in text and "next: medactive report" in text
    assert main(["bench", "--config", str(fake_config), "--out", str(out), "--dry-run"]) == 0
    assert "0 units to run, 5 complete" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    for suffix in ("md", "csv", "tex"):
        assert (out / "report" / "tables" / f"fake_b5_accuracy.{suffix}").is_file()
    for suffix in ("png", "svg"):
        assert (out / "report" / "curves" / f"fake_b5_accuracy.{suffix}").is_file()
    with ResultStore(out) as store:
        assert store.commands() == [f"medactive bench --config {fake_config} --out {out}"]


def test_overrides_reach_the_grid(tmp_path, fake_config, capsys):
    out = tmp_path / "out"
    assert main(["bench", "--config", str(fake_config), "--out", str(out), "--seeds", "3",
                 "--strategies", "fake_random", "--rounds", "1", "--no-supervised",
                 "--no-progress"]) == 0
    with ResultStore(out) as store:
        keys = {(r["strategy"], r["seed"], r["round"]) for r in store.rounds()}
        assert store.supervised() == []
    assert keys == {("fake_random", 3, 0), ("fake_random", 3, 1)}


@pytest.mark.parametrize("argv, message", [
    (["bench", "--out", "x"], "--config is required"),
    (["bench", "--config", "smoke-bench"], "--out DIR is required"),
    (["bench", "--config", "nope", "--out", "x"], "neither a preset"),
    (["report", "/nonexistent/dir"], "no results database"),
])
def test_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_data_is_refused_before_running(tmp_path, capsys):
    assert main(["bench", "--config", "smoke-bench", "--data-root", str(tmp_path / "none"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "pneumoniamnist.npz not found; pass --data-root" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_bench_on_real_data(medmnist_path, tmp_path, capsys):
    data_root = medmnist_path("pneumoniamnist").parents[1]
    out = tmp_path / "smoke"
    argv = ["bench", "--config", "smoke-bench", "--out", str(out), "--data-root",
            str(data_root), "--seeds", "0", "--no-supervised", "--no-progress"]
    assert main(argv) == 0
    assert main(["report", str(out)]) == 0
    with ResultStore(out) as store:
        rows = store.rounds()
    assert len(rows) == 2 * 3 and all(0.0 <= r["metrics"]["test_auc"] <= 1.0 for r in rows)
    assert (out / "report" / "tables" / "pneumoniamnist_b20_auc.tex").is_file()
    assert (out / "report" / "curves" / "pneumoniamnist_b20_auc.svg").is_file()


def test_dry_run_lists_pending_units_without_writing(tmp_path, fake_config, capsys):
    out = tmp_path / "out"
    assert main(["bench", "--config", str(fake_config), "--out", str(out), "--dry-run"]) == 0
    assert "5 units to run" in capsys.readouterr().out and not out.exists()
    assert main(["bench", "--config", str(fake_config), "--out", str(out), "--seeds", "0",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["bench", "--config", str(fake_config), "--out", str(out), "--dry-run"]) == 0
    assert "2 units to run, 3 complete" in capsys.readouterr().out
    assert main(["bench", "--config", str(fake_config), "--out", str(out), "--rounds", "4",
                 "--dry-run"]) == 2
    assert "rounds: 2 -> 4" in capsys.readouterr().err
    with ResultStore(out) as store:
        assert store.unit_options(Unit("fake", "fake_random", 5, 1)) is None
