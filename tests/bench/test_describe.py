"""`bench --describe` is written from the preset objects, so it cannot drift from what runs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from medactive.bench.config import describe_grid, load_grid
from medactive.bench.recipe_text import recipe_text
from medactive.cli import main
from medactive.tasks.classification import presets as cls_presets
from medactive.tasks.segmentation import presets as seg_presets


def _describe(capsys, *argv: str) -> str:
    assert main(["bench", "--config", *argv, "--describe", "--data-root", "/d"]) == 0
    return capsys.readouterr().out


def test_cpu_acdc_describe_states_the_preset_that_runs(capsys):
    # the landed text said 200 iterations, lr 1e-3, validation every 50 steps; the cpu
    # segmentation preset is 800 iterations, lr 1e-2, validation every 200 steps
    cpu = seg_presets.PRESETS["cpu"]
    out = _describe(capsys, "cpu-acdc")
    assert f"{cpu.iterations} iterations of batch {cpu.batch_size}" in out
    assert f"Adam lr {cpu.lr:g}" in out and f"every {cpu.val_every} steps" in out
    assert "200 iterations" not in out and "1e-3" not in out


def test_describe_follows_a_changed_preset(monkeypatch, capsys):
    changed = replace(seg_presets.PRESETS["cpu"], iterations=1234, lr=0.0042, val_every=77)
    monkeypatch.setitem(seg_presets.PRESETS, "cpu", changed)
    out = _describe(capsys, "cpu-acdc")
    assert "1234 iterations" in out and "Adam lr 0.0042" in out and "every 77 steps" in out


def test_describe_follows_command_line_overrides(capsys):
    out = _describe(capsys, "cpu-blood", "--epochs", "10")
    cpu = cls_presets.get_preset("cpu")
    assert f"'cpu' CNN recipe: {cpu.model} width {cpu.width}" in out
    assert "10 epochs of batch" in out and f"{cpu.epochs} epochs of batch" not in out


def test_frozen_grid_describes_its_head(tmp_path):
    grid = load_grid("frozen-blood")
    text = describe_grid(grid)
    assert "frozen embeddings, linear head" in text and "500 steps" in text
    toml = tmp_path / "g.toml"
    toml.write_text('name = "g"\nstrategies = ["random"]\nseeds = [0]\ntrain_mode = "frozen"\n'
                    'encoder = "enc.pt"\n[[datasets]]\nname = "d"\ndata = "d.npz"\n'
                    'budgets = [5]\ntask = "classification"\n'
                    'train_options = {head = {kind = "mlp", steps = 900}}\n')
    assert "MLP head (256 hidden)" in describe_grid(load_grid(toml))
    assert "900 steps" in describe_grid(load_grid(toml))
    finetune = toml.read_text().replace('train_mode = "frozen"', 'train_mode = "finetune"').replace(
        'train_options = {head = {kind = "mlp", steps = 900}}\n', "")
    toml.write_text(finetune)
    assert "CNN recipe: the encoder's backbone and a new head" in describe_grid(load_grid(toml))


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_recipe_of_every_named_preset(task):
    for name in ("survey", "cpu", "smoke"):
        text = recipe_text(task, name)
        assert text.startswith(f"{name!r}") and "not a" not in text
