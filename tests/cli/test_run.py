"""``medactive run`` end to end on real MedMNIST files with the smoke preset."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medactive.cli import main
from medactive.strategies import list_strategies

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


# -- bad input: one line, exit 2, nothing trained (issue 15, items 2 and 6) --------------------
def _tiny_npz(tmp_path) -> Path:
    path = tmp_path / "tiny.npz"
    np.savez(path, **_tiny_arrays())
    return path


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if `run` gets as far as loading data and building the task."""
    import medactive.experiment

    def refuse(*args, **kwargs):
        raise AssertionError("the task was built: the check came too late")

    monkeypatch.setattr(medactive.experiment, "build_task", refuse)


def _one_line_error(capsys) -> str:
    """The one error line, last on stderr (a progress line such as 'loading ...' may precede)."""
    lines = capsys.readouterr().err.splitlines()
    assert "Traceback" not in "\n".join(lines)
    errors = [line for line in lines if line.startswith("medactive: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    return errors[0]


def test_out_is_an_existing_file(tmp_path, capsys, no_training):
    (tmp_path / "notes.txt").write_text("mine\n")
    assert _run(_tiny_npz(tmp_path), "random", tmp_path / "notes.txt") == 2
    assert "notes.txt: exists and is not a folder" in _one_line_error(capsys)
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_out_below_a_file(tmp_path, capsys, no_training):
    (tmp_path / "notes.txt").write_text("mine\n")
    assert _run(_tiny_npz(tmp_path), "random", tmp_path / "notes.txt" / "run") == 2
    assert "is a file, not a folder" in _one_line_error(capsys)


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a read-only /sys")
def test_out_unwritable(tmp_path, capsys, no_training):
    assert _run(_tiny_npz(tmp_path), "random", "/sys/medactive-test-run") == 2
    assert "cannot write in /sys" in _one_line_error(capsys)


@pytest.mark.parametrize("flag, value, message", [
    ("--rounds", "-1", ("--rounds must be at least 0 (0: train and evaluate on the initial "
                        "set only), got -1")),
    ("--initial", "0", "--initial must be at least 1, got 0"),
    ("--budget", "0", "--budget must be at least 1, got 0"),
    ("--budget", "-3", "--budget must be at least 1, got -3"),
    ("--seed", "-1", "--seed must be at least 0, got -1"),
    ("--epochs", "0", "--epochs must be at least 1, got 0"),
    ("--image-size", "0", "--image-size must be at least 1, got 0"),
    ("--region-size", "0", "--region-size must be at least 1, got 0"),
    ("--mc-samples", "1", "--mc-samples must be at least 2, got 1"),
    ("--threads", "0", "--threads must be at least 1, got 0"),
    ("--ssl-epochs", "0", "--ssl-epochs must be at least 1, got 0"),
    ("--pseudo-label-max", "-1", "--pseudo-label-max must be at least 1, got -1"),
])
def test_integer_flags_one_rule(tmp_path, capsys, no_training, flag, value, message):
    args = {"--initial": "5", "--budget": "5", "--rounds": "1", "--seed": "0"}
    extra = []
    if flag in args:
        args[flag] = value
    else:
        extra = [flag, value]
    code = main(["run", "--data", str(_tiny_npz(tmp_path)), "--strategy", "random",
                 *[x for kv in args.items() for x in kv], "--preset", "smoke",
                 "--out", str(tmp_path / "o"), *extra])
    assert code == 2
    assert message in _one_line_error(capsys)


@pytest.mark.parametrize("flag, value, message", [
    ("--rounds", "-1", "--rounds must be at least 0"),
    ("--initial", "0", "--initial must be at least 1, got 0"),
    ("--budget", "0", "--budget must be at least 1, got 0"),
    ("--seed", "-2", "--seed must be at least 0, got -2"),
    ("--epochs", "0", "--epochs must be at least 1, got 0"),
])
def test_demo_integer_flags_one_rule(tmp_path, capsys, no_training, monkeypatch, flag, value,
                                     message):
    import medactive.data.classification.default

    def refuse():
        raise AssertionError("demo loaded its data before checking its flags")

    monkeypatch.setattr(medactive.data.classification.default, "load_default_dataset", refuse)
    assert main(["demo", "--out", str(tmp_path / "d"), flag, value]) == 2
    assert message in _one_line_error(capsys)


def test_rounds_zero_is_the_initial_round_only(tmp_path, capsys):
    assert _run(_tiny_npz(tmp_path), "random", tmp_path / "o", "--rounds", "0", "--initial",
                "10") == 0
    rows = _rows(tmp_path / "o" / "rounds.csv")
    assert [r["round"] for r in rows] == ["0"] and rows[0]["n_labeled"] == "10"


def _label_folder(root: Path, labels: list[str]) -> Path:
    """A folder of 8x8 PNGs, CSV line ``i + 2`` labelling ``x{i:02d}.png`` with ``labels[i]``."""
    from PIL import Image

    root.mkdir(parents=True)
    for i in range(len(labels)):
        Image.fromarray(np.full((8, 8), 10 * i % 256, dtype=np.uint8)).save(root / f"x{i:02d}.png")
    (root / "labels.csv").write_text(
        "path,label\n" + "".join(f"x{i:02d}.png,{lab}\n" for i, lab in enumerate(labels)))
    return root


def _folder_run(data, out, *extra):
    return main(["run", "--data", str(data), "--strategy", "random", "--initial", "4",
                 "--budget", "2", "--rounds", "1", "--preset", "smoke", "--out", str(out),
                 *extra])


def test_run_folder_refuses_a_typo_class(tmp_path, capsys):
    labels = ["benign", "malignant"] * 8
    labels[6] = "benigm"  # CSV line 8
    data = _label_folder(tmp_path / "imgs", labels)
    assert _folder_run(data, tmp_path / "o") == 2
    err = _one_line_error(capsys)
    assert "class 'benigm' has 1 sample (line 8)" in err and "--classes" in err
    assert not (tmp_path / "o" / "rounds.csv").exists()


def test_run_folder_refuses_nan_labels(tmp_path, capsys):
    labels = ["benign", "malignant"] * 8
    labels[3] = labels[9] = "nan"  # CSV lines 5 and 11
    data = _label_folder(tmp_path / "imgs", labels)
    assert _folder_run(data, tmp_path / "o") == 2
    assert "look like missing data: 'nan' on lines 5, 11" in _one_line_error(capsys)


def test_run_classes_flag_names_rows_outside_the_list(tmp_path, capsys):
    labels = ["benign", "malignant"] * 8
    labels[6] = "benigm"
    data = _label_folder(tmp_path / "imgs", labels)
    assert _folder_run(data, tmp_path / "o", "--classes", "benign,malignant") == 2
    assert ("labels not in the given classes ['benign', 'malignant']: 'benigm' on line 8"
            in _one_line_error(capsys))


@pytest.mark.parametrize("value", [",", "a,a"])
def test_run_classes_flag_checked(tmp_path, capsys, no_training, value):
    assert _folder_run(tmp_path, tmp_path / "o", "--classes", value) == 2
    assert "--classes" in _one_line_error(capsys)


@pytest.mark.slow
def test_run_classes_flag_keeps_a_rare_class_and_prints_counts(tmp_path, capsys):
    labels = ["benign", "malignant"] * 9 + ["rare"] * 3
    data = _label_folder(tmp_path / "imgs", labels)
    assert _folder_run(data, tmp_path / "o", "--classes", "benign,malignant,rare") == 0
    out = capsys.readouterr().out
    assert "3 classes: benign 9, malignant 9, rare 3" in out
    assert out.index("3 classes:") < out.index("round 0:")


def test_run_prints_class_counts_at_load(tmp_path, capsys):
    assert _run(_tiny_npz(tmp_path), "random", tmp_path / "o", "--initial", "5", "--budget", "5",
                "--rounds", "0") == 0
    counts = {str(c): int(n) for c, n in zip(*np.unique(np.concatenate(
        [a.reshape(-1) for k, a in _tiny_arrays().items() if k.endswith("_labels")]),
        return_counts=True))}
    out = capsys.readouterr().out
    assert f"2 classes: 0 {counts['0']}, 1 {counts['1']}" in out


# -- progress (issue 15, item 7) ---------------------------------------------------------------
@pytest.mark.slow
def test_run_reports_stages_as_plain_lines_when_not_a_terminal(tmp_path):
    """stdout and stderr into one pipe (as `> log 2>&1`): stage and progress lines come before
    round 0's result, with no carriage return or tqdm bar."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "medactive", "run", "--data", "default", "--strategy", "bald",
         "--initial", "20", "--budget", "10", "--rounds", "1", "--preset", "smoke",
         "--threads", "1", "--out", str(tmp_path / "o")],
        check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    log = proc.stdout
    assert proc.returncode == 0, log
    assert not any(mark in log for mark in ("\r", "█", "%|", "it/s]")), log
    lines = log.splitlines()

    def first(prefix: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    assert (first("loading default") < first("data: pneumoniamnist")
            < first("train (20 labels): 2/2 (100%) epochs")
            < first("scoring the pool (MC dropout): ") < first("round 0: 20 labels")
            < first("train (30 labels)") < first("round 1: 30 labels")), log
