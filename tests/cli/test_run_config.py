"""``medactive run --config FILE``: the settings of a bench unit (TOML) or a run.json, flags
overriding the file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medactive.cli import main

FAST = ["--threads", "1", "--no-progress"]


def _toml(options: dict) -> str:
    """A TOML text of flat settings and one-level tables (enough for a unit's options)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))

    lines, tables = [], []
    for key, v in options.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append(f"[{key}]")
            tables += [f"{k} = {value(x)}" for k, x in v.items()]
        else:
            lines.append(f"{key} = {value(v)}")
    return "\n".join(lines + tables) + "\n"


def _outputs(out: Path) -> tuple[list[dict], list[dict]]:
    """selections.csv and the metric columns of rounds.csv (timings differ between runs)."""
    with open(out / "selections.csv") as fh:
        selections = list(csv.DictReader(fh))
    with open(out / "rounds.csv") as fh:
        rounds = [{k: v for k, v in row.items() if "seconds" not in k}
                  for row in csv.DictReader(fh)]
    return selections, rounds


@pytest.mark.slow
def test_a_file_with_a_units_settings_gives_the_files_of_the_flags(tmp_path, medmnist_path):
    from medactive.bench.config import load_grid

    grid = load_grid("smoke-bench", data_root=medmnist_path("pneumoniamnist").parents[1])
    unit = next(u for u in grid.units() if u.strategy == "entropy")
    options = grid.unit_options(unit)
    options["rounds"] = 1
    (tmp_path / "unit.toml").write_text(_toml(options))
    assert main(["run", "--config", str(tmp_path / "unit.toml"), "--out",
                 str(tmp_path / "file"), *FAST]) == 0
    flags = ["run", "--data", options["data"], "--strategy", options["strategy"],
             "--initial", str(options["initial"]), "--budget", str(options["budget"]),
             "--rounds", "1", "--seed", str(options["seed"]), "--task", options["task"],
             "--preset", options["preset"], "--out", str(tmp_path / "flags"), *FAST]
    assert main(flags) == 0
    assert _outputs(tmp_path / "file") == _outputs(tmp_path / "flags")
    got = json.loads((tmp_path / "file" / "run.json").read_text())["config"]
    assert got == json.loads((tmp_path / "flags" / "run.json").read_text())["config"]


@pytest.mark.slow
def test_flags_override_the_file_and_run_json_repeats_a_run(tmp_path):
    (tmp_path / "run.toml").write_text('data = "default"\nstrategy = "margin"\ninitial = 20\n'
                                       'budget = 10\nrounds = 1\nseed = 3\npreset = "smoke"\n'
                                       '[data_options]\nimage_size = 28\n')
    first = tmp_path / "first"
    assert main(["run", "--config", str(tmp_path / "run.toml"), "--seed", "4",
                 "--out", str(first), *FAST]) == 0
    config = json.loads((first / "run.json").read_text())["config"]
    assert config["seed"] == 4 and config["strategy"] == "margin"
    assert config["data_options"] == {"image_size": 28}
    again = tmp_path / "again"
    assert main(["run", "--config", str(first / "run.json"), "--out", str(again), *FAST]) == 0
    assert _outputs(again) == _outputs(first)
    assert json.loads((again / "run.json").read_text())["config"] == config


def test_the_example_config_runs(tmp_path):
    example = Path(__file__).resolve().parents[2] / "examples" / "run-config.toml"
    assert main(["run", "--config", str(example), "--rounds", "0", "--preset", "smoke",
                 "--out", str(tmp_path / "out"), *FAST]) == 0
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["rounds"] == 0


@pytest.mark.parametrize("text,message", [
    ('data = "default"\nbudgte = 3\n', "unknown setting(s) 'budgte'"),
    ('data = "default"\nstrategy = 3\n', "strategy must be a string, got 3"),
    ('data = "default"\ninitial = "20"\n', "initial must be an integer"),
    ('data = "default"\nrounds = -1\n', "rounds"),
    ('data = "default"\ndata_options = 5\n', "data_options must be a table"),
    ('data = "default\n', "not valid TOML"),
    ('data = "default"\nstrategy = "margin"\n', "missing --initial, --budget, --rounds"),
    ('data = "default"\nout = "x"\n', "--out and --threads are flags only"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(path) in err or "missing" in err
    assert not (tmp_path / "out" / "rounds.csv").exists()


def test_missing_settings_without_a_file_name_the_flags(tmp_path, capsys):
    assert main(["run", "--data", "default", "--strategy", "margin", "--out",
                 str(tmp_path / "o")]) == 2
    assert "missing --initial, --budget, --rounds" in capsys.readouterr().err


def test_a_missing_or_broken_json_file(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "r.json").write_text("{")
    assert main(["run", "--config", str(tmp_path / "r.json"), "--out", str(tmp_path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
