"""Composed names end to end: ``medactive run`` on PneumoniaMNIST and a tiny segmentation set."""

from __future__ import annotations

import csv

import pytest

from medactive.cli import main
from tests.segmentation_data import write_h5_layout


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_power_bald_on_pneumoniamnist(tmp_path):
    out = tmp_path / "out"
    assert main(["run", "--data", "default", "--strategy", "power:bald", "--initial", "20",
                 "--budget", "10", "--rounds", "1", "--preset", "smoke", "--threads", "1",
                 "--out", str(out)]) == 0
    assert [r["n_labeled"] for r in _rows(out / "rounds.csv")] == ["20", "30"]
    assert len({s["sample_id"] for s in _rows(out / "selections.csv")}) == 30


@pytest.mark.slow
def test_cluster_entropy_on_slices(tmp_path):
    data = write_h5_layout(tmp_path / "acdc")
    out = tmp_path / "out"
    assert main(["run", "--data", str(data), "--task", "segmentation",
                 "--strategy", "cluster:entropy", "--initial", "4", "--budget", "4",
                 "--rounds", "1", "--preset", "smoke", "--threads", "1",
                 "--out", str(out)]) == 0
    assert [r["n_labeled"] for r in _rows(out / "rounds.csv")] == ["4", "8"]
    assert len({s["sample_id"] for s in _rows(out / "selections.csv")}) == 8
