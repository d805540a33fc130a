"""``medactive run --encoder ... --train-mode frozen|finetune --semi-supervised ...``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medactive.cli import main
from medactive.errors import ConfigError
from medactive.experiment import ExperimentConfig, check_training_options
from tests.tasks.classification.test_task_modes import write_tiny_encoder


@pytest.fixture
def encoder_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDACTIVE_CACHE", str(tmp_path / "cache"))
    return write_tiny_encoder(tmp_path / "enc.pt")


def _run(out: Path, *extra: str, strategy: str = "badge", rounds: str = "2") -> int:
    return main(["run", "--data", "default", "--strategy", strategy, "--preset", "smoke",
                 "--initial", "20", "--budget", "10", "--rounds", rounds, "--threads", "1",
                 "--seed", "0", "--out", str(out), *extra])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_frozen_run_is_reproducible_and_recorded(tmp_path, encoder_file):
    frozen = ("--encoder", str(encoder_file), "--train-mode", "frozen", "--head", "mlp")
    out = tmp_path / "a"
    assert _run(out, *frozen) == 0
    assert _run(tmp_path / "b", *frozen) == 0
    for name in ("rounds.csv", "selections.csv"):
        assert (out / name).read_text() == (tmp_path / "b" / name).read_text(), name
    assert [r["n_labeled"] for r in _rows(out / "rounds.csv")] == ["20", "30", "40"]
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["train_mode"] == "frozen"
    assert info["config"]["train_options"]["head"] == {"kind": "mlp"}
    task = info["task"]
    assert task["encoder"]["key"] == {"method": "test", "seed": 0}
    assert task["encoder"]["out_features"] == 32 and task["head"]["kind"] == "mlp"
    # another seed: other selections
    assert main(["run", "--data", "default", "--strategy", "badge", "--preset", "smoke",
                 "--initial", "20", "--budget", "10", "--rounds", "2", "--threads", "1",
                 "--seed", "1", "--out", str(tmp_path / "c"), *frozen]) == 0
    assert (out / "selections.csv").read_text() != \
        (tmp_path / "c" / "selections.csv").read_text()
    # resume checks the mode
    assert _run(out, "--encoder", str(encoder_file), "--train-mode", "frozen", "--resume") == 2


def test_frozen_fixmatch_pseudo_targets_never_become_selections(tmp_path, encoder_file):
    out = tmp_path / "semi"
    assert _run(out, "--encoder", str(encoder_file), "--train-mode", "frozen",
                "--semi-supervised", "fixmatch", strategy="entropy") == 0
    selections = _rows(out / "selections.csv")
    assert len(selections) == 20 + 2 * 10  # the initial set and the queried batches only
    assert len({r["sample_id"] for r in selections}) == len(selections)
    assert not (out / "pseudo_labels.csv").exists()
    info = json.loads((out / "run.json").read_text())
    assert info["task"]["semi_supervised"]["threshold"] == 0.95
    assert "embeddings" in info["task"]["semi_supervised"]["views"]


def test_finetune_from_encoder_and_cold_start(tmp_path, encoder_file):
    out = tmp_path / "ft"
    assert _run(out, "--encoder", str(encoder_file), "--initial-strategy", "typiclust",
                strategy="random", rounds="1") == 0
    info = json.loads((out / "run.json").read_text())
    assert info["task"]["train_mode"] == "finetune" and "backbone" in info["task"]
    initial = [r for r in _rows(out / "selections.csv") if r["round"] == "0"]
    assert len(initial) == 20 and all(r["score"] for r in initial)


def test_old_run_json_without_the_new_fields_resumes(tmp_path):
    out = tmp_path / "old"
    assert _run(out, strategy="random", rounds="1") == 0
    info = json.loads((out / "run.json").read_text())
    for key in ("encoder", "encoder_weights", "train_mode", "semi_supervised",
                "semi_options"):
        del info["config"][key]
    (out / "run.json").write_text(json.dumps(info))
    assert _run(out, "--resume", strategy="random", rounds="1") == 0


def test_bad_encoder_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert _run(tmp_path / "x", "--encoder", str(bad), "--train-mode", "frozen") == 2
    # the one error line ends stderr; only progress lines ("loading ...") may precede it
    lines = capsys.readouterr().err.strip().splitlines()
    err = lines[-1]
    assert err.startswith("medactive: error:") and "bad.pt" in err
    assert "Traceback" not in "\n".join(lines)
    assert all(not line.startswith("medactive:") for line in lines[:-1])
    assert _run(tmp_path / "y", "--encoder", str(tmp_path / "missing.pt")) == 2
    assert "no such encoder file" in capsys.readouterr().err


@pytest.mark.parametrize("changes, message", [
    ({"train_mode": "frozen"}, "give --encoder"),
    ({"train_mode": "thawed"}, "--train-mode must be"),
    ({"semi_supervised": "mean-teacher"}, "for segmentation, not classification"),
    ({"semi_supervised": "fixmatch", "semi_options": {"tau": 1}}, "unknown fixmatch option"),
    ({"semi_options": {"threshold": 0.5}}, "without --semi-supervised"),
    ({"encoder_weights": "w.pt"}, "timm:NAME"),
    ({"train_options": {"head": {"kind": "mlp"}}}, "frozen only"),
])
def test_classification_option_errors(changes, message):
    config = ExperimentConfig(data="default", strategy="random", initial=1, budget=1, rounds=1,
                              task="classification", **changes)
    with pytest.raises(ConfigError, match=message):
        check_training_options(config)


def test_segmentation_refuses_classification_options(encoder_file):
    def config(**changes):
        return ExperimentConfig(data="x", strategy="random", initial=1, budget=1, rounds=1,
                                task="segmentation", **changes)

    with pytest.raises(ConfigError, match="fixmatch is for classification, not segmentation"):
        check_training_options(config(semi_supervised="fixmatch"))
    with pytest.raises(ConfigError, match="classification only"):
        check_training_options(config(encoder=str(encoder_file)))
    check_training_options(config(semi_supervised="mean-teacher"))
    with pytest.raises(ConfigError, match="--ssl"):
        check_training_options(ExperimentConfig(
            data="default", strategy="random", initial=1, budget=1, rounds=1,
            encoder=str(encoder_file), ssl={"method": "simclr"}))
