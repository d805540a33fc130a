"""CEAL pseudo-labelling through ``run_experiment`` (run folder, resume) and ``medactive run``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from medactive.cli import main
from medactive.experiment import ExperimentConfig, read_run, run_experiment
from tests.loop.test_ceal_loop import PseudoFakeTask, _same

FILES = ("rounds.csv", "selections.csv", "pseudo_labels.csv")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _config(pseudo=None) -> ExperimentConfig:
    return ExperimentConfig(data="fake", strategy="entropy", initial=5, budget=3, rounds=3,
                            seed=2, pseudo_label=pseudo)


CEAL = {"entropy": 0.8, "decay": 0.1, "max": None}


class Stop(Exception):
    pass


def _stop_after(rnd: int):
    def on_round(record):
        if record.round == rnd:
            raise Stop
    return on_round


def test_run_folder_holds_pseudo_labels_and_their_metrics(tmp_path):
    records = run_experiment(_config(CEAL), out_dir=tmp_path, task=PseudoFakeTask())
    pseudo = _rows(tmp_path / "pseudo_labels.csv")
    ids = PseudoFakeTask().pool_ids
    for record in records:
        rows = [r for r in pseudo if r["round"] == str(record.round)]
        assert [r["sample_id"] for r in rows] == [ids[i] for i in record.pseudo_idx]
        assert [int(r["label"]) for r in rows] == record.pseudo_labels.tolist()
    rounds = _rows(tmp_path / "rounds.csv")
    assert [float(r["n_pseudo"]) for r in rounds] == [r.pseudo_idx.size for r in records]
    assert rounds[0]["pseudo_label_accuracy"] == ""  # NaN: no pseudo-labels in round 0
    assert {r["sample_id"] for r in pseudo}.isdisjoint(
        {r["sample_id"] for r in _rows(tmp_path / "selections.csv") if r["round"] <= "1"})


def test_a_plain_run_writes_no_pseudo_file(tmp_path):
    from tests.loop.fake_task import FakeTask

    run_experiment(_config(), out_dir=tmp_path, task=FakeTask())
    assert not (tmp_path / "pseudo_labels.csv").exists()
    assert "n_pseudo" not in (tmp_path / "rounds.csv").read_text()
    assert all(r.pseudo_idx.size == 0 for r in read_run(tmp_path, FakeTask().pool_ids))


def test_resume_from_the_run_folder_equals_an_uninterrupted_run(tmp_path):
    full = run_experiment(_config(CEAL), out_dir=tmp_path / "full", task=PseudoFakeTask())
    with pytest.raises(Stop):
        run_experiment(_config(CEAL), out_dir=tmp_path / "cut", task=PseudoFakeTask(),
                       on_round=_stop_after(1))
    task = PseudoFakeTask()
    completed = read_run(tmp_path / "cut", task.pool_ids)
    assert [r.round for r in completed] == [0, 1]
    assert completed[1].next_pseudo_idx.tolist() == full[1].next_pseudo_idx.tolist()
    resumed = run_experiment(_config(CEAL), out_dir=tmp_path / "cut", task=task,
                             completed=completed)
    for a, b in zip(full, resumed, strict=True):
        _same(a, b, rel=1e-5)
    assert task.calls[0]["extra"].tolist() == full[2].pseudo_idx.tolist()
    for name in FILES:
        assert (tmp_path / "full" / name).read_text() == (tmp_path / "cut" / name).read_text()


def test_decay_or_max_without_entropy_is_refused(tmp_path, capsys):
    code = main(["run", "--data", "x.npz", "--strategy", "entropy", "--initial", "5",
                 "--budget", "5", "--rounds", "1", "--pseudo-label-max", "10",
                 "--out", str(tmp_path)])
    assert code == 2
    assert "--pseudo-label-entropy" in capsys.readouterr().err


# -- medactive run on real data ----------------------------------------------------------------
def _run(data, out, *extra):
    return main(["run", "--data", str(data), "--strategy", "entropy", "--initial", "50",
                 "--budget", "50", "--rounds", "2", "--seed", "0", "--preset", "smoke",
                 "--threads", "1", "--out", str(out), *extra])


@pytest.mark.slow
def test_cli_writes_pseudo_labels_csv_and_metrics(medmnist_path, tmp_path, capsys):
    data = medmnist_path("pneumoniamnist")
    # the smoke model (2 epochs) predicts ~0.5 everywhere: nothing clears 0.05, but the
    # columns and the file are there
    assert _run(data, tmp_path / "a", "--pseudo-label-entropy", "0.05") == 0
    rounds = _rows(tmp_path / "a" / "rounds.csv")
    assert [r["n_pseudo"] for r in rounds] == ["0.0", "0.0", "0.0"]
    assert "pseudo_label_accuracy" in rounds[0]
    assert _rows(tmp_path / "a" / "pseudo_labels.csv") == []
    assert "round 1: 100 labels + 0 pseudo" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_pseudo_labels_with_a_trained_model_reproduce(medmnist_path, tmp_path):
    data = medmnist_path("pneumoniamnist")
    extra = ("--epochs", "10", "--pseudo-label-entropy", "0.3", "--pseudo-label-max", "100")
    assert _run(data, tmp_path / "a", *extra) == 0
    rounds = _rows(tmp_path / "a" / "rounds.csv")
    assert [r["n_labeled"] for r in rounds] == ["50", "100", "150"]
    pseudo = _rows(tmp_path / "a" / "pseudo_labels.csv")
    assert [sum(r["round"] == k for r in pseudo) for k in "012"] == [
        0, int(float(rounds[1]["n_pseudo"])), int(float(rounds[2]["n_pseudo"]))]
    assert pseudo, "a 10-epoch model should be confident about some samples"
    assert 0.0 <= float(rounds[1]["pseudo_label_accuracy"]) <= 1.0
    selections = _rows(tmp_path / "a" / "selections.csv")
    for k in (1, 2):  # never a sample of the labeled set it trained with
        labeled = {r["sample_id"] for r in selections if int(r["round"]) <= k}
        assert labeled.isdisjoint(r["sample_id"] for r in pseudo if r["round"] == str(k))
    assert len(selections) == 150
    assert _run(data, tmp_path / "b", *extra) == 0
    for name in FILES:
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
