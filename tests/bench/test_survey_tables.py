"""The survey's Tables 6-8 as typed in: shape and spot values checked against the text."""

from __future__ import annotations

import pytest

from medactive.bench.config import CORE_STRATEGIES, TABLE7_STRATEGIES, TABLE8_STRATEGIES
from medactive.bench.survey_tables import TABLES, survey_table, survey_tables_for


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.key)
def test_every_row_has_five_rounds_and_labels_follow_the_budget(table):
    assert table.labels == tuple(table.budget * k for k in range(1, 7))
    for strategy, row in table.rows.items():
        assert len(row) == 5, strategy
        assert all(std >= 0 for _, std in row)


def test_strategy_sets_match_the_tables():
    assert set(survey_table("nct", 50, "test_accuracy").rows) == set(CORE_STRATEGIES)
    assert set(survey_table("isic", 1000, "test_auc").rows) == set(TABLE7_STRATEGIES)
    assert set(survey_table("acdc", 10, "test_asd_mean").rows) == set(TABLE8_STRATEGIES)


def test_spot_values_from_the_text():
    assert survey_table("nct", 50, "test_accuracy").rows["margin"][0] == (70.65, 2.20)
    assert survey_table("nct", 1000, "test_accuracy").initial == 83.38
    assert survey_table("isic", 50, "test_auc").rows["coreset_l2"][1] == (0.6761, 0.0382)
    dice = survey_table("acdc", 10, "test_dice_mean")
    assert (dice.initial, dice.supervised) == (0.4966, 0.9045)
    assert dice.rows["badge"][0] == (0.8192, 0.0144)
    assert survey_table("acdc", 10, "test_asd_mean").rows["coreset_cosine"][4] == (1.85, 0.31)
    assert survey_table("isic", 50, "test_auc").supervised is None


def test_lookups():
    assert survey_table("nct", 500, "test_accuracy") is None
    assert [t.key for t in survey_tables_for("nct", "test_accuracy")] == ["table6a", "table6b"]
