"""Encoders, training modes and semi-supervised keys in benchmark grids."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from medactive.bench.config import (
    ENGINE_KEYS,
    DatasetSpec,
    GridConfig,
    SupervisedUnit,
    load_grid,
    resolve_encoders,
)
from medactive.bench.runner import run_grid
from medactive.bench.store import ResultStore
from medactive.errors import ConfigError
from tests.bench import encoder_backend
from tests.bench.fake_backend import fake_grid

TABLE = {"method": "simclr", "epochs": 2, "model": "smallcnn", "width": 8, "seed": 0}


def _grid(**grid_keys) -> GridConfig:
    base = fake_grid(seeds=(0, 1), rounds=1, budgets=(5,), strategies=("fake_random",))
    spec = base.datasets[0]
    datasets = (spec, replace(spec, name="fake-fixmatch", semi_supervised="fixmatch",
                              semi_options={"threshold": 0.9}))
    return replace(base, datasets=datasets, backend=encoder_backend.BACKEND, **grid_keys)


def test_grids_without_the_keys_keep_their_options():
    grid = fake_grid()
    for unit in grid.units() + grid.supervised_units():
        assert not set(grid.unit_options(unit)) & set(ENGINE_KEYS)


def test_keys_reach_units_only_where_set():
    grid = _grid(encoder="/enc/blood.pt", train_mode="frozen")
    plain = grid.unit_options(grid.units()[0])
    assert plain["encoder"] == "/enc/blood.pt" and plain["train_mode"] == "frozen"
    assert "semi_supervised" not in plain and "encoder_weights" not in plain
    semi = grid.unit_options(next(u for u in grid.units() if u.dataset == "fake-fixmatch"))
    assert semi["semi_supervised"] == "fixmatch" and semi["semi_options"] == {"threshold": 0.9}
    # the fully supervised reference uses the same recipe
    sup = grid.unit_options(SupervisedUnit("fake-fixmatch", 0))
    assert sup["encoder"] == "/enc/blood.pt" and sup["semi_supervised"] == "fixmatch"


def test_encoder_paths_resolve_against_the_data_root(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text("""
name = "g"
strategies = ["random"]
seeds = [0]
encoder = "encoders/blood.pt"
train_mode = "frozen"

[[datasets]]
name = "a"
data = "medmnist/bloodmnist.npz"
budgets = [5]

[[datasets]]
name = "b"
data = "medmnist/bloodmnist.npz"
budgets = [5]
encoder = "timm:resnet18"
encoder_weights = "weights/r18.safetensors"

[[datasets]]
name = "c"
data = "medmnist/bloodmnist.npz"
budgets = [5]
encoder = "/abs/enc.pt"
""")
    grid = load_grid(path, data_root=tmp_path / "root")
    a, b, c = (grid.unit_options(u) for u in grid.units())
    assert a["encoder"] == str(tmp_path / "root" / "encoders" / "blood.pt")
    assert b["encoder"] == "timm:resnet18"
    assert b["encoder_weights"] == str(tmp_path / "root" / "weights" / "r18.safetensors")
    assert c["encoder"] == "/abs/enc.pt"


def test_an_encoder_table_is_completed_and_named_after_its_data():
    grid = _grid(encoder=dict(TABLE), train_mode="frozen")
    options = grid.unit_options(grid.units()[0])
    assert options["encoder"]["epochs"] == 2 and options["encoder"]["width"] == 8
    assert options["encoder"]["temperature"] == 0.5  # medactive pretrain's default
    # both entries read the same data with the same table: one file
    first, second = (grid.encoder_file(s.name) for s in grid.datasets)
    assert first == second and first.startswith("fake-") and first.endswith(".pt")
    other = replace(grid, encoder={**TABLE, "epochs": 3})
    assert other.encoder_file("fake") != first


def test_the_runner_pretrains_once_before_the_units(tmp_path):
    encoder_backend.PRETRAINED.clear()
    encoder_backend.BUILT.clear()
    grid = _grid(encoder=dict(TABLE), train_mode="frozen")
    out = tmp_path / "out"
    with ResultStore(out) as store:
        result = run_grid(grid, store)
        assert not result.failures and result.n_finished == 6  # 2 x 2 AL + 2 supervised
        expected = str(out.absolute() / "encoders" / grid.encoder_file("fake"))
        assert encoder_backend.PRETRAINED == [(grid.datasets[0].data, expected)]
        assert set(encoder_backend.BUILT) == {expected}
        for unit in grid.units():
            assert store.unit_options(unit)["encoder"] == expected
        assert store.grids()[-1].datasets[0].encoder == expected
    # a finished grid pretrains nothing; a grid extended by a seed finds the file ready
    with ResultStore(out) as store:
        run_grid(replace(grid, seeds=(0, 1, 2)), store)
    assert len(encoder_backend.PRETRAINED) == 1


def test_a_moved_results_folder_still_resumes(tmp_path):
    grid = _grid(encoder=dict(TABLE), train_mode="frozen")
    with ResultStore(tmp_path / "a") as store:
        unit = grid.units()[0]
        store.register_unit(unit, resolve_encoders(grid, tmp_path / "a").unit_options(unit))
        assert store.check_unit(unit, resolve_encoders(grid, tmp_path / "b").unit_options(unit))
        with pytest.raises(ConfigError, match="encoder"):
            store.check_unit(unit, replace(grid, encoder="/other/enc.pt").unit_options(unit))


@pytest.mark.parametrize("keys, message", [
    ({"train_mode": "frozen"}, "needs encoder"),
    ({"train_mode": "linear"}, "train_mode must be one of"),
    ({"encoder": "/e.pt", "ssl": {"epochs": 1}}, "either encoder or ssl"),
    ({"encoder": "/e.pt", "encoder_weights": "/w.pt"}, "timm:NAME"),
    ({"encoder": {"epochs": 2, "colour": 1}}, "unknown key"),
    ({"encoder": {"model": "vit"}}, "encoder model must be one of"),
    ({"semi_supervised": "mixmatch"}, "semi_supervised must be one of"),
    ({"semi_options": {"threshold": 0.9}}, "needs semi_supervised"),
])
def test_invalid_keys_fail_clearly(keys, message):
    spec = DatasetSpec(name="d", data="d.npz", budgets=(5,), task="classification")
    with pytest.raises(ConfigError, match=message):
        GridConfig(name="g", strategies=("random",), seeds=(0,), datasets=(spec,), **keys)


def test_semi_supervised_method_must_suit_the_task():
    spec = DatasetSpec(name="d", data="d.npz", budgets=(5,), task="classification",
                       semi_supervised="mean-teacher")
    with pytest.raises(ConfigError, match="is for segmentation"):
        GridConfig(name="g", strategies=("random",), seeds=(0,), datasets=(spec,))


def test_frozen_presets_share_one_encoder_per_dataset():
    epochs = {"frozen-pneumonia": 40, "frozen-blood": 20, "frozen-retina": 100}
    for name in ("frozen-pneumonia", "frozen-blood", "frozen-retina"):
        grid = load_grid(name, data_root="/nonexistent")
        plain, semi = grid.datasets
        assert semi.name == f"{plain.name}-fixmatch" and semi.semi_supervised == "fixmatch"
        assert grid.encoder_file(plain.name) == grid.encoder_file(semi.name)
        assert set(grid.strategies_for(semi.name)) < set(grid.strategies_for(plain.name))
        options = grid.unit_options(grid.units()[0])
        assert options["train_mode"] == "frozen" and options["encoder"]["epochs"] == epochs[name]
        assert Path(plain.data).name == Path(semi.data).name
