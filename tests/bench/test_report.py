"""Reports: marks, AUBC, penalty matrix on hand-checkable numbers; files from a fake grid."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import numpy as np
import pytest

from medactive.bench.config import DatasetSpec
from medactive.bench.report import (
    Cell,
    ResultTable,
    aubc,
    aubc_cells,
    aubc_csv,
    aubc_table,
    build_report,
    match_survey,
    metric_format,
    penalty_matrix,
    rank_agreement,
    rank_marks,
    read_table_csv,
    survey_as_table,
    survey_rank_rows,
    survey_ranks_markdown,
    table_csv,
    table_latex,
    table_markdown,
)
from medactive.bench.runner import run_grid
from medactive.bench.store import ResultStore
from medactive.bench.survey_tables import survey_table
from medactive.errors import DataError
from tests.bench.fake_backend import fake_grid


def _table(per_seed: dict[str, dict[int, list[float]]], *, metric="test_accuracy",
           labels=(10, 20, 30)) -> ResultTable:
    cells = {}
    for strategy, seeds in per_seed.items():
        for rnd in range(len(labels)):
            cells[(strategy, rnd)] = Cell.of([v[rnd] for v in seeds.values()])
    return ResultTable(title="t", dataset="d", budget=10, fmt=metric_format(metric),
                       strategies=list(per_seed), labels=list(labels), cells=cells,
                       per_seed=per_seed, supervised=Cell(0.9, None, 1))


def test_rank_marks():
    assert rank_marks({"a": 0.7, "b": 0.9, "c": 0.8}) == {"b": "best", "c": "second"}
    assert rank_marks({"a": 2.0, "b": 1.0, "c": 3.0}, lower_is_better=True) == {
        "b": "best", "a": "second"}
    assert rank_marks({"a": 0.5, "b": 0.5}) == {}
    assert rank_marks({"a": 0.9, "b": 0.9, "c": 0.1}) == {"a": "best", "b": "best"}


def test_metric_formats():
    acc = metric_format("test_accuracy")
    assert (acc.label, acc.show(0.93361), acc.lower_is_better) == ("ACC (%)", "93.36", False)
    assert metric_format("test_asd_mean").lower_is_better
    assert metric_format("test_auc").show(0.61234) == "0.6123"
    assert metric_format("test_dice_mean").label == "DSC"


def test_aubc_by_hand():
    assert aubc([10, 20, 30], [0.5, 0.7, 0.7]) == pytest.approx(0.65)
    assert aubc([10, 20], [0.4, 0.6]) == pytest.approx(0.5)
    assert aubc([5], [0.3]) == 0.3
    table = _table({"a": {0: [0.5, 0.7, 0.7], 1: [0.5, 0.5, 0.9]}})
    cell = aubc_cells(table)["a"]
    assert cell.mean == pytest.approx((0.65 + 0.6) / 2) and cell.n == 2


def test_penalty_matrix_counts_significant_wins_per_round():
    # a beats b in both rounds by 0.10 +- 0.01 over 3 seeds (t ~ 17 > 4.30); c ties with b
    table = _table({
        "a": {0: [0.5, 0.80, 0.90], 1: [0.5, 0.81, 0.91], 2: [0.5, 0.79, 0.89]},
        "b": {0: [0.5, 0.70, 0.80], 1: [0.5, 0.70, 0.80], 2: [0.5, 0.70, 0.80]},
        "c": {0: [0.5, 0.60, 0.85], 1: [0.5, 0.80, 0.75], 2: [0.5, 0.70, 0.80]},
    })
    strategies, matrix, n_env = penalty_matrix([table])
    assert strategies == ["a", "b", "c"] and n_env == 1
    np.testing.assert_allclose(matrix, [[0, 1, 0], [0, 0, 0], [0, 0, 0]])
    # lower-is-better flips the direction
    _, flipped, _ = penalty_matrix([_table(table.per_seed, metric="test_asd_mean")])
    assert flipped[1, 0] == 1 and flipped[0, 1] == 0


def test_marks_compare_means_as_printed():
    # 96.333 % and 96.334 % both print as 96.33: they share the second mark (BloodMNIST
    # b = 500, Confidence and Margin at 3,000 labels), where exact float equality split them
    table = _table({"bald": {0: [0.5, 0.9651]}, "least_confidence": {0: [0.5, 0.96333]},
                    "margin": {0: [0.5, 0.96334]}, "random": {0: [0.5, 0.9446]}},
                   labels=(500, 1000))
    assert table.marks(1) == {"bald": "best", "least_confidence": "second",
                              "margin": "second"}


def test_aubc_csv_names_each_column_once():
    table = aubc_table([_table({"a": {0: [0.5, 0.7, 0.7], 1: [0.5, 0.7, 0.9]},
                                "b": {0: [0.5, 0.6, 0.6], 1: [0.5, 0.6, 0.6]}})])
    text = aubc_csv(table)
    header = text.splitlines()[0].split(",")
    assert len(header) == len(set(header))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["strategy"], r["budget"], r["mark"]) for r in rows] == [
        ("a", "10", "best"), ("b", "10", "second")]
    assert float(rows[0]["mean"]) == pytest.approx((0.65 + 0.70) / 2)


def test_penalty_matrix_needs_two_paired_seeds():
    table = _table({"a": {0: [0.5, 0.9, 0.9]}, "b": {0: [0.5, 0.1, 0.1]}})
    assert penalty_matrix([table])[2] == 0


def test_markdown_latex_and_csv_mark_best_and_second():
    table = _table({"random": {0: [0.5, 0.60, 0.70], 1: [0.5, 0.62, 0.72]},
                    "entropy": {0: [0.5, 0.70, 0.60], 1: [0.5, 0.72, 0.64]},
                    "badge": {0: [0.5, 0.65, 0.80]}})
    md = table_markdown(table)
    assert "| Entropy | 50.00 ± 0.00 | **71.00 ± 1.41** | 62.00 ± 2.83 |" in md
    assert "| Random | 50.00 ± 0.00 | 61.00 ± 1.41 | _71.00 ± 1.41_ |" in md
    assert "| BADGE | 50.00 (n=1) | _65.00 (n=1)_ | **80.00 (n=1)** |" in md
    assert "| Fully supervised | 90.00 |" in md
    tex = table_latex(table)
    assert r"{\boldmath $71.00 \pm 1.41$}" in tex and r"\underline{$71.00 \pm 1.41$}" in tex
    assert r"\multicolumn{3}{c}{90.00}" in tex
    rows = list(csv.DictReader(io.StringIO(table_csv(table))))
    best = [(r["strategy"], r["round"]) for r in rows if r["mark"] == "best"]
    assert best == [("entropy", "1"), ("badge", "2")]
    assert rows[-1]["strategy"] == "fully_supervised" and rows[-1]["mean"] == "0.9"


def test_survey_table_in_our_layout():
    table = survey_as_table(survey_table("nct", 50, "test_accuracy"))
    assert table.labels == [50, 100, 150, 200, 250, 300]
    assert table.cells[("margin", 1)].mean == pytest.approx(0.7065)
    assert table.cells[("random", 0)].std is None
    assert "| Margin | 60.46 | **70.65 ± 2.20** |" in table_markdown(table)


def test_match_survey_by_budget_level():
    blood = DatasetSpec(name="bloodmnist", data="x", budgets=(50, 500), survey="nct")
    assert match_survey(blood, 50, "test_accuracy").key == "table6a"
    assert match_survey(blood, 500, "test_accuracy").key == "table6b"
    # a grid run with --budgets 500 only still meets Table 6b (it met nothing before)
    only_high = DatasetSpec(name="bloodmnist", data="x", budgets=(500,), survey="nct")
    assert match_survey(only_high, 500, "test_accuracy").key == "table6b"
    assert match_survey(DatasetSpec(name="b", data="x", budgets=(200,), survey="nct"), 200,
                        "test_accuracy").key == "table6a"
    assert match_survey(blood, 500, "test_auc") is None
    assert match_survey(DatasetSpec(name="x", data="x", budgets=(7,)), 7, "test_auc") is None


def test_rank_agreement_with_itself_is_one():
    survey = survey_as_table(survey_table("nct", 50, "test_accuracy"))
    per_seed = {s: {0: [survey.cells[(s, r)].mean for r in range(6)]}
                for s in survey.strategies}
    ours = _table(per_seed, labels=survey.labels)
    rho, n = rank_agreement(ours, survey)
    assert n == 9 and rho == pytest.approx(1.0)


def test_build_report_writes_tables_and_curves(tmp_path):
    grid = fake_grid(seeds=(0, 1), budgets=(5, 10))
    with ResultStore(tmp_path) as store:
        run_grid(grid, store, command="medactive bench --config fake --out x")
    report = build_report(tmp_path)
    names = {p.relative_to(tmp_path / "report").as_posix() for p in report.files}
    for stem in ("fake_b5_accuracy", "fake_b10_nll", "aubc_fake_accuracy"):
        assert {f"tables/{stem}.md", f"tables/{stem}.csv", f"tables/{stem}.tex"} <= names
    for stem in ("fake_b5_accuracy", "fake_b10_accuracy", "penalty_accuracy"):
        assert {f"curves/{stem}.png", f"curves/{stem}.svg"} <= names
    assert (tmp_path / "report" / "curves" / "fake_b5_accuracy.png").stat().st_size > 1000
    page = (tmp_path / "report" / "report.md").read_text()
    assert "medactive bench --config fake --out x" in page
    assert "Fully supervised" in page and "Pairwise penalty matrix" in page


def test_report_of_an_empty_store_is_a_clear_error(tmp_path):
    ResultStore(tmp_path).close()
    with pytest.raises(DataError, match="no finished rounds"):
        build_report(tmp_path)
    with pytest.raises(DataError, match="no results database"):
        build_report(tmp_path / "missing")


def test_coreset_l2_and_cosine_get_a_figure_6_plot(tmp_path):
    grid = fake_grid(seeds=(0, 1), budgets=(5, 10), strategies=("coreset_l2", "coreset_cosine"),
                     supervised_seeds=0)
    with ResultStore(tmp_path) as store:
        assert run_grid(grid, store).failures == []
    report = build_report(tmp_path)
    names = {p.name for p in report.files}
    assert {"coreset_fake_accuracy.png", "coreset_fake_accuracy.svg"} <= names
    assert "| Core-Set-L2 |" in (tmp_path / "report" / "report.md").read_text()


def test_table_csv_reads_back():
    table = _table({"random": {0: [0.5, 0.6, 0.7], 1: [0.5, 0.62, 0.72]},
                    "entropy": {0: [0.5, 0.7, 0.6]}})
    back = read_table_csv(table_csv(table))
    assert back.strategies == ["random", "entropy"] and back.labels == [10, 20, 30]
    assert back.cells[("random", 1)].mean == pytest.approx(0.61)
    assert back.cells[("entropy", 2)].std is None and back.supervised.mean == 0.9
    assert table_markdown(back).splitlines()[4:6] == table_markdown(table).splitlines()[4:6]


def test_every_survey_rank_is_listed_with_its_n():
    survey = survey_as_table(survey_table("nct", 1000, "test_accuracy"))
    # ours ranks the survey's strategies in reverse order: rho = -1 over 9
    order = sorted(survey.strategies, key=lambda s: aubc(
        survey.labels, [survey.cells[(s, r)].mean for r in range(6)]))
    per_seed = {s: {0: [0.5 + 0.01 * i] * 6} for i, s in enumerate(reversed(order))}
    ours = replace(_table(per_seed, labels=(500, 1000, 1500, 2000, 2500, 3000)), budget=500,
                   dataset="bloodmnist")
    spec = DatasetSpec(name="bloodmnist", data="x", budgets=(500,), survey="nct")
    rows = survey_rank_rows([ours], {"bloodmnist": spec})
    assert len(rows) == 1 and rows[0]["survey"] == "table6b" and rows[0]["n_strategies"] == 9
    assert rows[0]["rho"] == pytest.approx(-1.0)
    assert "| bloodmnist, b = 500 | accuracy | table6b (b = 1000) | -1.00 | 9 |" in \
        survey_ranks_markdown(rows)
