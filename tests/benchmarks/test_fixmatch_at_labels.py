"""benchmarks/fixmatch_at_labels.py: the labelled set of a stored unit, resuming, the summary."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from medactive.bench.config import Unit
from medactive.bench.store import ResultStore, record_to_row
from medactive.loop.records import RoundRecord

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fixmatch_at_labels.py"
UNIT = Unit("toy", "margin", 2, 0)
OPTIONS = {"task": "classification", "preset": "cpu"}


def _load():
    spec = importlib.util.spec_from_file_location("fixmatch_at_labels", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(r: int, added: list[int], acc: float) -> RoundRecord:
    return RoundRecord(round=r, n_labeled=0, metrics={"test_accuracy": acc},
                       added_idx=np.asarray(added), added_scores=np.zeros(len(added)),
                       queried_idx=np.zeros(0, dtype=np.int64), queried_scores=np.zeros(0))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A unit with 3 rounds: initial {0, 5}, then {3, 7}, then {1, 9}; ids s0..s9."""
    ids = [f"s{i}" for i in range(10)]
    with ResultStore(tmp_path) as s:
        s.register_unit(UNIT, OPTIONS)
        for r, (added, acc) in enumerate([([0, 5], 0.5), ([3, 7], 0.6), ([1, 9], 0.7)]):
            s.add_round(UNIT, record_to_row(_record(r, added, acc), ids))
        return s.path


def test_unit_state_rebuilds_the_labelled_set_of_a_round(store):
    mod = _load()
    options, labeled, metrics = mod.unit_state(store, "toy", "margin", 2, 0, 1)
    assert options == OPTIONS
    assert labeled.tolist() == [0, 5, 3, 7]
    assert metrics == {"test_accuracy": 0.6}
    assert mod.unit_state(store, "toy", "margin", 2, 0, 2)[1].tolist() == [0, 5, 3, 7, 1, 9]


def test_unit_state_names_a_missing_unit_or_round(store):
    mod = _load()
    with pytest.raises(SystemExit, match="no unit toy/margin/b2/s1"):
        mod.unit_state(store, "toy", "margin", 2, 1, 1)
    with pytest.raises(SystemExit, match="3 rounds stored, needs 0..3"):
        mod.unit_state(store, "toy", "margin", 2, 0, 3)


def test_finished_arms_are_skipped_and_the_summary_is_paired(tmp_path, caplog):
    mod = _load()
    out = tmp_path / "fm.csv"
    lines = [",".join(mod.FIELDS)]
    for seed, sup, fm in [(0, 0.90, 0.92), (1, 0.80, 0.81), (2, 0.70, 0.73)]:
        for arm, v in (("supervised", sup), ("fixmatch", fm)):
            lines.append(f"toy,margin,2,{seed},1,4,{arm},{{}},accuracy,{v},{sup},1.0")
    # a row of another recipe on the same labels: resumed apart, not in the summary
    lines.append('toy,margin,2,0,1,4,fixmatch,"{""width"": 64}",accuracy,0.1,0.9,1.0')
    out.write_text("\n".join(lines) + "\n")
    done = mod.done_rows(out)
    assert ("toy", "margin", 2, 1, 1, "fixmatch", "{}") in done
    assert ("toy", "margin", 2, 0, 1, "fixmatch", '{"width": 64}') in done
    with caplog.at_level(logging.INFO, logger="fixmatch_at_labels"):
        mod.summarise(out, "toy", "margin", 2, 1)
    # differences 0.02, 0.01, 0.03: mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3) = 3.46
    assert "mean +0.0200, sd 0.0100, paired t 3.46 (df 2)" in caplog.text


def test_a_csv_with_other_columns_is_refused(tmp_path):
    out = tmp_path / "old.csv"
    out.write_text("dataset,strategy,budget,seed,round,n_labeled,arm,metric,value\n")
    with pytest.raises(SystemExit, match="old.csv: columns .* use another --out"):
        _load().done_rows(out)


def test_train_options_epochs_becomes_the_units_epochs(monkeypatch):
    """``{"epochs": 100}`` sets the unit's own epochs field; the rest override the preset."""
    from medactive.bench import backend

    seen = {}

    class Task:
        primary_metric = "accuracy"

        def pool_labels(self, idx):
            return np.zeros(len(idx), dtype=np.int64)

        def fit(self, idx, labels, *, seed):
            return None

        def evaluate(self, model, split):
            return {"accuracy": 0.5}

    monkeypatch.setattr(backend, "build_task", lambda opts: seen.update(opts) or Task())
    options = {**OPTIONS, "epochs": 30, "train_options": {"augmentation": "none"}}
    metric, value, _ = _load().train_arm(options, np.array([0, 1]), 0, 1, "supervised", {},
                                         {"epochs": 100, "width": 64})
    assert (metric, value) == ("accuracy", 0.5)
    assert seen["epochs"] == 100
    assert seen["train_options"] == {"augmentation": "none", "width": 64}
    assert options["epochs"] == 30  # the caller's options are left as they were
