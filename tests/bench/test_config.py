"""Grid configs: presets keep the survey protocol's shape, TOML files load and fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from medactive.bench.config import (
    CORE_STRATEGIES,
    TABLE7_STRATEGIES,
    TABLE8_STRATEGIES,
    DatasetSpec,
    GridConfig,
    Unit,
    describe_preset,
    list_presets,
    load_grid,
)
from medactive.errors import ConfigError

PRESETS = ["cpu-acdc", "cpu-blood", "cpu-pneumonia", "cpu-retina", "frozen-blood",
           "frozen-pneumonia", "frozen-retina", "smoke-bench", "survey-acdc", "survey-isic",
           "survey-nct"]


def test_every_preset_is_listed():
    assert list_presets() == PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_presets_follow_the_survey_protocol_shape(name, tmp_path):
    grid = load_grid(name, data_root=tmp_path)
    assert grid.initial is None  # initial set = budget (survey §6.1.3)
    for spec in grid.datasets:
        assert Path(spec.data).is_relative_to(tmp_path)
        assert spec.metrics
    for unit in grid.units():
        options = grid.unit_options(unit)
        assert options["initial"] == options["budget"] == unit.budget
        assert options["seed"] == unit.seed and options["strategy"] == unit.strategy
    if name == "smoke-bench":
        assert grid.rounds == 2 and grid.seeds == (0, 1) and grid.preset == "smoke"
        assert grid.strategies == ("random", "entropy")
        assert len(grid.units()) == 4 and len(grid.supervised_units()) == 1
        return
    assert grid.rounds == 5
    assert grid.supervised_units()
    if name.startswith("frozen-"):
        assert grid.seeds == tuple(range(10)) and grid.train_mode == "frozen"
        assert "random_balanced" in grid.strategies and "Deviations" in describe_preset(name)
        return
    if name.startswith("survey-"):
        assert grid.preset == "survey" and grid.seeds == (0, 1, 2, 3, 4)
    else:
        assert grid.preset == "cpu" and len(grid.seeds) >= 3
        assert "Deviations" in describe_preset(name)
    expected = {"survey-isic": TABLE7_STRATEGIES, "survey-acdc": TABLE8_STRATEGIES,
                "cpu-acdc": TABLE8_STRATEGIES}.get(name, CORE_STRATEGIES)
    # the survey's methods in its order, with the baseline that AL must beat beside random
    baseline = "random_foreground" if "acdc" in name else "random_balanced"
    assert grid.strategies == ("random", baseline) + expected[1:]


def test_survey_budgets_and_metrics(tmp_path):
    nct = load_grid("survey-nct", data_root=tmp_path)
    assert nct.datasets[0].budgets == (50, 1000)
    assert nct.datasets[0].metrics == ("test_accuracy",)
    assert len(nct.units()) == (9 + 1) * 2 * 5  # the nine methods and random_balanced
    acdc = load_grid("survey-acdc", data_root=tmp_path)
    assert acdc.datasets[0].budgets == (10,) and acdc.datasets[0].task == "segmentation"
    assert acdc.datasets[0].metrics == ("test_dice_mean", "test_asd_mean")
    blood = load_grid("cpu-blood", data_root=tmp_path)
    assert blood.datasets[0].budgets == (50, 500)


def test_units_are_seed_major():
    grid = GridConfig(name="g", strategies=("a", "b"), seeds=(0, 1), datasets=(
        DatasetSpec(name="d", data="x.npz", budgets=(5, 10)),))
    assert [u.key for u in grid.units()[:4]] == ["d/a/b5/s0", "d/b/b5/s0", "d/a/b10/s0",
                                                  "d/b/b10/s0"]
    assert grid.units()[4] == Unit("d", "a", 5, 1)


def test_round_trip_through_dict():
    grid = load_grid("cpu-blood", data_root="/data")
    assert GridConfig.from_dict(grid.to_dict()) == grid


TOML = """
name = "mine"
strategies = ["random", "entropy"]
seeds = [0, 1, 2]
rounds = 3
epochs = 2

[strategy_options.bald]
n_mc_samples = 5

[[datasets]]
name = "pneu"
data = "medmnist/pneumoniamnist.npz"
budgets = [10]
metrics = ["test_auc"]
[datasets.data_options]
image_size = 28
"""


def test_toml_paths_resolve_against_the_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(TOML)
    grid = load_grid(path)
    assert grid.name == "mine" and grid.seeds == (0, 1, 2) and grid.epochs == 2
    assert grid.datasets[0].data == str(tmp_path / "medmnist" / "pneumoniamnist.npz")
    assert grid.datasets[0].data_options == {"image_size": 28}
    assert grid.strategy_options == {"bald": {"n_mc_samples": 5}}
    other = load_grid(path, data_root="/elsewhere")
    assert other.datasets[0].data == "/elsewhere/medmnist/pneumoniamnist.npz"
    path.write_text('data_root = "../data"\n' + TOML)
    assert load_grid(path).datasets[0].data.startswith(str(tmp_path / ".." / "data"))


@pytest.mark.parametrize("text, message", [
    (TOML.replace("rounds = 3", "roundz = 3"), "unknown key(s) 'roundz'"),
    (TOML.replace("budgets = [10]", "budgets = [0]"), "budgets must be"),
    (TOML.replace('name = "pneu"', 'nam = "pneu"'), "datasets[0]: unknown key(s) 'nam'"),
    (TOML.replace("seeds = [0, 1, 2]", "seeds = [0, 0]"), "seeds contain duplicates"),
    ('name = "x"\nstrategies = ["random"]\nseeds = [0]\n', "needs at least one [[datasets]]"),
    ("name = ", "invalid TOML"),
])
def test_bad_toml_names_the_problem(tmp_path, text, message):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as info:
        load_grid(path)
    assert message in str(info.value)
    assert str(path) in str(info.value) or "grid 'mine'" in str(info.value)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="neither a preset.*smoke-bench"):
        load_grid("no-such-preset")


def test_overrides_ignore_none():
    grid = load_grid("smoke-bench", data_root="/d")
    assert grid.with_overrides(seeds=None, rounds=4).rounds == 4
    assert grid.with_overrides(seeds=None).seeds == (0, 1)
