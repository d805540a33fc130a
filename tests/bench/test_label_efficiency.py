"""Labels to reach 95 % / 100 % of full supervision, on hand-checkable tables and a fake grid."""

from __future__ import annotations

import csv
import io

import pytest

from medactive.bench.label_efficiency import (
    labels_to_target,
    meets,
    targets_csv,
    targets_markdown,
)
from medactive.bench.report import Cell, ResultTable, build_report, metric_format
from medactive.bench.runner import run_grid
from medactive.bench.store import ResultStore
from tests.bench.fake_backend import fake_grid


def _table(dataset, budget, per_seed, *, labels, supervised=0.9, metric="test_accuracy"):
    cells = {}
    for strategy, seeds in per_seed.items():
        for rnd in range(len(labels)):
            cell = Cell.of([v[rnd] for v in seeds.values()])
            if cell is not None:
                cells[(strategy, rnd)] = cell
    return ResultTable(title="t", dataset=dataset, budget=budget, fmt=metric_format(metric),
                       strategies=list(per_seed), labels=list(labels), cells=cells,
                       per_seed=per_seed,
                       supervised=None if supervised is None else Cell(supervised, None, 1))


# reference 0.9: 95 % is 0.855
B10 = _table("d", 10, {
    "a": {0: [0.80, 0.86, 0.90], 1: [0.80, 0.86, 0.92]},   # means 0.80, 0.86, 0.91
    "b": {0: [0.80, 0.83, 0.85], 1: [0.80, 0.83, 0.85]},   # never 0.855 at b = 10
    "c": {0: [0.90, 0.90, 0.90], 1: [0.50, None, None]},   # rounds 1-2: one seed only
}, labels=(10, 20, 30))
B20 = _table("d", 20, {
    "a": {0: [0.855, 0.95, 0.95], 1: [0.855, 0.95, 0.95]},
    "b": {0: [0.84, 0.85, 0.88], 1: [0.84, 0.862, 0.90]},  # means 0.84, 0.856, 0.89
}, labels=(20, 40, 60))


def _by_strategy(rows):
    return {(r.dataset, r.strategy): r for r in rows}


def test_fewest_labels_over_budgets_and_rounds():
    rows = _by_strategy(labels_to_target([B20, B10]))
    a, b, c = rows[("d", "a")], rows[("d", "b")], rows[("d", "c")]
    # a: 0.86 >= 0.855 at 20 labels of b = 10 (b = 20 ties at 20 labels with 0.855: the
    # smaller budget is shown); 100 %: 0.91 at 30 labels
    assert (a.reached[0.95].labels, a.reached[0.95].budget, a.reached[0.95].round) == (20, 10, 1)
    assert (a.reached[1.0].labels, a.reached[1.0].budget) == (30, 10)
    assert a.reached[1.0].mean == pytest.approx(0.91) and a.supervised == 0.9
    # b: only b = 20 gets there, at round 1 (40 labels); never 100 %
    assert (b.reached[0.95].labels, b.reached[0.95].budget) == (40, 20)
    assert b.reached[1.0] is None
    assert b.best.mean == pytest.approx(0.89) and b.best.labels == 60
    # c: 0.9 in rounds 1-2 is seed 0 alone, so only round 0 (mean 0.7) counts
    assert c.reached[0.95] is None and c.best.labels == 10 and c.best.mean == pytest.approx(0.7)


def test_exactly_the_target_counts():
    assert meets(0.95 * 0.9, 0.9, 0.95, lower_is_better=False)
    assert not meets(0.8549, 0.9, 0.95, lower_is_better=False)


def test_lower_is_better_reaches_reference_over_fraction():
    asd = _table("s", 10, {"a": {0: [3.0, 2.1, 1.9], 1: [3.0, 2.1, 1.9]}}, labels=(10, 20, 30),
                 supervised=2.0, metric="test_asd_mean")
    row = labels_to_target([asd])[0]
    assert row.reached[0.95].labels == 20  # 2.1 <= 2.0 / 0.95
    assert row.reached[1.0].labels == 30 and row.best.mean == pytest.approx(1.9)


def test_entries_over_the_same_data_share_a_section():
    semi = _table("d-fixmatch", 10, {"a": {0: [0.88, 0.90, 0.91], 1: [0.88, 0.90, 0.91]}},
                  labels=(10, 20, 30), supervised=None)
    rows = labels_to_target([B10, semi], groups={"d": "blood", "d-fixmatch": "blood"})
    assert [(r.dataset, r.strategy) for r in rows] == [
        ("d", "a"), ("d", "b"), ("d", "c"), ("d-fixmatch", "a")]
    text = targets_markdown(rows)
    assert text.count("### blood: ACC (%)") == 1
    assert "| d | a | 90.00 | 20 (b = 10) | 30 (b = 10) | 91.00 (30) |" in text
    assert "| d | b | 90.00 | not reached | not reached | 85.00 (30) |" in text
    assert "| d-fixmatch | a | – | no reference | no reference | 91.00 (30) |" in text
    lines = list(csv.DictReader(io.StringIO(targets_csv(rows))))
    assert lines[0] == {"group": "blood", "dataset": "d", "strategy": "a",
                        "metric": "test_accuracy", "supervised": "0.9", "labels_95": "20",
                        "budget_95": "10", "labels_100": "30", "budget_100": "10",
                        "best": "0.91", "best_labels": "30"}
    assert lines[1]["labels_100"] == "" and lines[3]["supervised"] == ""


def test_report_writes_labels_to_target(tmp_path):
    out = tmp_path / "out"
    with ResultStore(out) as store:
        assert not run_grid(fake_grid(seeds=(0, 1), rounds=2), store).failures
        reference = store.supervised("fake")[0]["metrics"]["test_accuracy"]
    report = build_report(out, plots=False)
    assert out / "report" / "labels_to_target.md" in report.files
    lines = list(csv.DictReader(io.StringIO(
        (out / "report" / "labels_to_target.csv").read_text())))
    assert {(r["dataset"], r["strategy"], r["metric"]) for r in lines} == {
        ("fake", s, m) for s in ("fake_random", "fake_uncertainty")
        for m in ("test_accuracy", "test_nll")}
    assert all(float(r["supervised"]) == pytest.approx(reference)
               for r in lines if r["metric"] == "test_accuracy")
    page = (out / "report" / "report.md").read_text()
    assert "## Labels to reach full supervision" in page and "labels_to_target.csv" in page
