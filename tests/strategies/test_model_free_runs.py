"""End to end: the model-free strategies in ``medactive run`` on the embedded PneumoniaMNIST
and on a small ACDC-layout segmentation fixture (pooled bottleneck features as embeddings)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from medactive.cli import main


def _run(out: Path, *extra: str) -> int:
    return main(["run", "--data", "default", "--preset", "smoke", "--initial", "20",
                 "--budget", "10", "--rounds", "1", "--threads", "1", "--seed", "0",
                 "--out", str(out), *extra])


def _selections(path: Path) -> list[dict[str, str]]:
    with open(path / "selections.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_probcover_query_round(tmp_path):
    assert _run(tmp_path / "pc", "--strategy", "probcover") == 0
    queried = [r for r in _selections(tmp_path / "pc") if r["round"] == "1"]
    assert len(queried) == 10 and all(r["score"] for r in queried)  # coverage gains


@pytest.mark.slow
def test_kmeans_cold_start_on_simclr_embeddings(tmp_path):
    assert _run(tmp_path / "km", "--strategy", "max_cover", "--initial-strategy", "kmeans",
                "--ssl", "simclr", "--ssl-epochs", "1") == 0
    rows = _selections(tmp_path / "km")
    initial = [r for r in rows if r["round"] == "0"]
    assert len(initial) == 20 and all(float(r["score"]) >= 1 for r in initial)  # cluster sizes
    assert len([r for r in rows if r["round"] == "1"]) == 10


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kmeans", "max_cover", "probcover", "facility_location"])
def test_segmentation_query_on_bottleneck_features(name, tmp_path):
    from tests.segmentation_data import write_h5_layout

    data = write_h5_layout(tmp_path / "acdc")
    out = tmp_path / name
    assert main(["run", "--data", str(data), "--strategy", name, "--initial", "4",
                 "--budget", "2", "--rounds", "1", "--seed", "5", "--preset", "smoke",
                 "--threads", "1", "--out", str(out)]) == 0
    assert len([r for r in _selections(out) if r["round"] == "1"]) == 2
