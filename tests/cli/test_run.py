"""``medactive run`` end to end on real MedMNIST files with the smoke preset."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medactive.cli import main
from medactive.strategies.base import list_strategies

CORE = ["random", "least_confidence", "entropy", "margin", "mean_variance", "dbal", "bald",
        "badge", "coreset_l2", "coreset_cosine"]


def _run(data, strategy, out, *extra):
    return main(["run", "--data", str(data), "--strategy", strategy, "--initial", "50",
                 "--budget", "50", "--rounds", "2", "--seed", "0", "--preset", "smoke",
                 "--out", str(out), *extra])


def _rows(path: Path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_core_strategies_registered():
    assert set(CORE) <= set(list_strategies())


@pytest.mark.slow
@pytest.mark.parametrize("strategy", CORE)
@pytest.mark.parametrize("dataset", ["pneumoniamnist", "retinamnist", "bloodmnist"])
def test_run_every_strategy(dataset, strategy, medmnist_path, tmp_path):
    assert _run(medmnist_path(dataset), strategy, tmp_path) == 0
    rounds = _rows(tmp_path / "rounds.csv")
    assert [r["round"] for r in rounds] == ["0", "1", "2"]
    assert [r["n_labeled"] for r in rounds] == ["50", "100", "150"]
    assert {"test_accuracy", "test_auc", "val_accuracy", "test_balanced_accuracy"} <= set(rounds[0])
    sel = _rows(tmp_path / "selections.csv")
    assert [sum(r["round"] == str(k) for r in sel) for k in range(3)] == [50, 50, 50]
    assert len({r["sample_id"] for r in sel}) == 150
    assert (tmp_path / "run.json").is_file() and (tmp_path / "run.log").is_file()


@pytest.mark.slow
def test_labels_shaped_n(medmnist_path, tmp_path):
    with np.load(medmnist_path("pneumoniamnist")) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for split in ("train", "val", "test"):
        arrays[f"{split}_labels"] = arrays[f"{split}_labels"].reshape(-1)
    flat = tmp_path / "flat.npz"
    np.savez(flat, **arrays)
    assert _run(flat, "badge", tmp_path / "out") == 0
    assert len(_rows(tmp_path / "out" / "rounds.csv")) == 3


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["badge", "bald"])
def test_same_seed_same_outputs(strategy, medmnist_path, tmp_path):
    data = medmnist_path("retinamnist")
    assert _run(data, strategy, tmp_path / "a") == 0
    assert _run(data, strategy, tmp_path / "b") == 0
    for name in ("rounds.csv", "selections.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_unknown_strategy(tmp_path, capsys):
    assert _run("whatever.npz", "nope", tmp_path) == 2
    err = capsys.readouterr().err
    assert "unknown strategy 'nope'" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_missing_file(tmp_path, capsys):
    assert _run(tmp_path / "missing.npz", "random", tmp_path / "o") == 2
    assert "missing.npz" in capsys.readouterr().err


def _tiny_arrays() -> dict[str, np.ndarray]:
    """A 30/6/6 MedMNIST-layout set of random 8x8 images with labels (N, 1) in {0, 1}."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 30), ("val", 6), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 8, 8), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1))
    return arrays


def test_budget_larger_than_pool(tmp_path, capsys):
    np.savez(tmp_path / "tiny.npz", **_tiny_arrays())
    code = main(["run", "--data", str(tmp_path / "tiny.npz"), "--strategy", "random",
                 "--initial", "10", "--budget", "25", "--rounds", "1", "--preset", "smoke",
                 "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "budget" in err and "Traceback" not in err


def test_labels_outside_class_set(tmp_path, capsys):
    arrays = _tiny_arrays()
    arrays["train_labels"][3] = -1
    np.savez(tmp_path / "bad.npz", **arrays)
    assert _run(tmp_path / "bad.npz", "random", tmp_path / "o") == 2
    assert "label" in capsys.readouterr().err


def test_strategies_lists_descriptions(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in CORE:
        assert name in out
