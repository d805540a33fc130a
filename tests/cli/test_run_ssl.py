"""``medactive run --ssl simclr --initial-strategy ...`` on the embedded PneumoniaMNIST."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medactive.cli import main
from medactive.data.classification.default import load_default_dataset
from medactive.loop import initial_indices

SSL = ("--ssl", "simclr", "--ssl-epochs", "1")


def _run(out: Path, *extra: str) -> int:
    return main(["run", "--data", "default", "--strategy", "random", "--preset", "smoke",
                 "--initial", "20", "--budget", "20", "--rounds", "1", "--threads", "1",
                 "--seed", "0", "--out", str(out), *extra])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_ssl_typiclust_run_writes_its_files(tmp_path):
    out = tmp_path / "ssl"
    assert _run(out, *SSL, "--initial-strategy", "typiclust") == 0
    for name in ("run.json", "rounds.csv", "selections.csv", "timings.csv", "run.log",
                 "pretrained.pt"):
        assert (out / name).is_file(), name
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["ssl"]["method"] == "simclr" and info["config"]["ssl"]["epochs"] == 1
    assert info["config"]["initial_strategy"] == "typiclust"
    assert info["task"]["ssl"]["epochs"] == 1
    rounds = _rows(out / "rounds.csv")
    assert [r["n_labeled"] for r in rounds] == ["20", "40"]
    initial = [r for r in _rows(out / "selections.csv") if r["round"] == "0"]
    assert len(initial) == 20 and all(r["score"] for r in initial)  # typicality scores
    assert "SimCLR" in (out / "run.log").read_text()
    # same seed, same everything (pretraining, initial set, selections, metrics)
    assert _run(tmp_path / "again", *SSL, "--initial-strategy", "typiclust") == 0
    for name in ("rounds.csv", "selections.csv"):
        assert (out / name).read_text() == (tmp_path / "again" / name).read_text()
    # resume checks the settings: other pretraining epochs are refused
    assert _run(out, "--ssl", "simclr", "--ssl-epochs", "2", "--initial-strategy", "typiclust",
                "--resume") == 2


def test_default_options_change_nothing(tmp_path):
    assert _run(tmp_path / "plain") == 0
    assert _run(tmp_path / "explicit", "--initial-strategy", "random") == 0
    for name in ("rounds.csv", "selections.csv"):
        assert (tmp_path / "plain" / name).read_text() == \
            (tmp_path / "explicit" / name).read_text()
    assert not (tmp_path / "plain" / "pretrained.pt").exists()
    pool = load_default_dataset().train.ids
    initial = [r["sample_id"] for r in _rows(tmp_path / "plain" / "selections.csv")
               if r["round"] == "0"]
    assert initial == [str(pool[i]) for i in initial_indices(len(pool), 20, 0)]
    config = json.loads((tmp_path / "plain" / "run.json").read_text())
    assert "ssl" not in config["task"]


def test_ssl_without_cold_start_keeps_the_random_initial_set(tmp_path):
    assert _run(tmp_path / "plain") == 0
    assert _run(tmp_path / "ssl", *SSL) == 0
    sel = {name: [r["sample_id"] for r in _rows(tmp_path / name / "selections.csv")
                  if r["round"] == "0"] for name in ("plain", "ssl")}
    assert sel["plain"] == sel["ssl"]


@pytest.mark.parametrize("extra, message", [
    (("--task", "segmentation", *SSL), "classification only"),
    (("--task", "segmentation", "--initial-strategy", "typiclust"), "classification only"),
    (("--initial-strategy", "typiclust"), "--ssl simclr"),
    (("--ssl-epochs", "3"), "need --ssl"),
    ((*SSL, "--initial-strategy", "entropy"), "only embeddings"),
    ((*SSL, "--initial-strategy", "nope"), "unknown strategy"),
    (("--ssl", "simclr", "--ssl-epochs", "0"), "epochs"),
])
def test_refusals(tmp_path, capsys, extra, message):
    assert _run(tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "rounds.csv").exists()


def test_help_documents_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "--ssl" in text and "--initial-strategy" in text and "pretrained.pt" in text


def test_embeddings_are_unit_norm(tmp_path):
    from medactive.experiment import ExperimentConfig, build_task, pretrain_task

    config = ExperimentConfig(data="default", strategy="random", initial=20, budget=20,
                              rounds=1, preset="smoke", ssl={"epochs": 1})
    task = build_task(config)
    pretrain_task(task, config)
    emb = task.ssl_predictions().get("embeddings", np.arange(10))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
