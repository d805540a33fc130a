"""Self-supervised pretraining and cold start in benchmark grids (``ssl``, ``initial_strategy``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medactive.bench.config import SupervisedUnit, list_presets, load_grid
from medactive.errors import ConfigError

TOML = """
name = "ssl"
strategies = ["random", "entropy"]
seeds = [0, 1]
rounds = 1
preset = "smoke"
ssl = {method = "simclr", epochs = 2}
initial_strategy = "typiclust"

[[datasets]]
name = "pneumonia"
data = "default"
budgets = [20]

[[datasets]]
name = "plain"
data = "default"
budgets = [20]
ssl = {epochs = 1}
initial_strategy = "random"
"""


def _grid(tmp_path: Path, text: str = TOML):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return load_grid(path)


def test_ssl_and_initial_strategy_reach_units(tmp_path):
    grid = _grid(tmp_path)
    units = [u for u in grid.units() if u.dataset == "pneumonia"]
    options = [grid.unit_options(u) for u in units]
    assert all(o["ssl"]["method"] == "simclr" and o["ssl"]["epochs"] == 2 for o in options)
    assert all(o["ssl"]["temperature"] == 0.5 for o in options)  # completed with defaults
    assert all(o["initial_strategy"] == "typiclust" for o in options)
    # the initial set's inputs do not depend on the query strategy
    seed0 = [o for o in options if o["seed"] == 0]
    keys = ("data", "seed", "ssl", "initial_strategy", "initial", "preset", "data_options")
    assert len({repr([o[k] for k in keys]) for o in seed0}) == 1
    plain = grid.unit_options(next(u for u in grid.units() if u.dataset == "plain"))
    assert plain["ssl"]["epochs"] == 1 and "initial_strategy" not in plain
    supervised = grid.unit_options(SupervisedUnit("pneumonia", 0))
    assert supervised["ssl"]["epochs"] == 2 and "initial_strategy" not in supervised


def test_presets_are_unchanged():
    for name in list_presets():
        grid = load_grid(name, data_root="/nonexistent")
        for unit in grid.units()[:3] + grid.supervised_units()[:1]:
            options = grid.unit_options(unit)
            assert "ssl" not in options and "initial_strategy" not in options


@pytest.mark.parametrize("change, message", [
    (('ssl = {method = "simclr", epochs = 2}\n', ''), "needs ssl"),
    (('initial_strategy = "typiclust"', 'initial_strategy = "entropy"'), "only embeddings"),
    (('initial_strategy = "typiclust"', 'initial_strategy = "nope"'), "unknown strategy"),
    (('epochs = 2}', 'epochs = 0}'), "epochs"),
    (('budgets = [20]\n\n', 'budgets = [20]\ntask = "segmentation"\n\n'), "classification only"),
])
def test_refusals(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        _grid(tmp_path, TOML.replace(*change, 1))


def test_backend_pretrains_the_task():
    from medactive.bench import backend

    options = {"data": "default", "strategy": "random", "initial": 20, "budget": 20,
               "rounds": 1, "seed": 0, "preset": "smoke", "ssl": {"epochs": 1, "batch_size": 256},
               "initial_strategy": "typiclust"}
    backend.validate(options)
    task = backend.build_task(options)
    assert task.pretrained_state is not None
    assert backend.loop_config(options).initial_strategy == "typiclust"


def test_round_trip_through_the_store_format(tmp_path):
    import json

    from medactive.bench.config import GridConfig

    grid = _grid(tmp_path)
    assert GridConfig.from_dict(json.loads(json.dumps(grid.to_dict()))) == grid


def test_a_rerun_grid_reuses_the_pretrained_weights(tmp_path, monkeypatch):
    """The weights are kept in OUT/pretrained/, so a new process running more units of the
    grid (a rerun after a kill, or an added strategy) does not pretrain again: here the second
    run fails if it tries."""
    from medactive.bench import runner
    from medactive.bench.runner import run_grid
    from medactive.bench.store import ResultStore
    from medactive.tasks.classification import task as classification

    first = TOML.split('[[datasets]]\nname = "plain"')[0].replace("seeds = [0, 1]", "seeds = [0]")
    out = tmp_path / "out"
    with ResultStore(out) as store:
        run_grid(_grid(tmp_path, first.replace('["random", "entropy"]', '["random"]')), store)
    assert len(list((out / "pretrained").glob("*.pt"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("pretrained again")

    monkeypatch.setattr(classification, "pretrain_simclr", refuse)
    runner._TASK_CACHE.clear()  # as in a new process
    with ResultStore(out) as store:
        result = run_grid(_grid(tmp_path, first), store)  # adds the entropy unit
    assert result.failures == [] and result.n_finished == 1
