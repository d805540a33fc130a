"""``project export``: the pending batch as a CSV template or a folder, importable back."""

from __future__ import annotations

import csv

import pytest

from medactive.errors import ConfigError
from medactive.project.exporter import export_batch
from medactive.project.importer import import_labels
from medactive.project.workflow import query


def test_nothing_pending(project):
    with pytest.raises(ConfigError, match="nothing pending"):
        export_batch(project)


def test_csv_roundtrip(project):
    batch = query(project, strategy="random", budget=4)
    result = export_batch(project)
    assert result.path == project.directory / "exports" / "round0.csv"
    with open(result.path) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == batch.sample_ids
    assert all(r["label"] == "" for r in rows)
    for r in rows:  # the expert fills the label column in their own tool
        r["label"] = "ab"[project.truth[r["id"]]]
    with open(result.path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert import_labels(project, result.path).n_written == 4
    assert project.counts()["batch"]["labelled"] == 4


def test_folder_export_copies_images(project, tmp_path, image_folder):
    root, _ = image_folder
    batch = query(project, strategy="random", budget=4)
    before = {p: p.read_bytes() for p in root.rglob("*.png")}
    result = export_batch(project, fmt="folder", out=tmp_path / "out")
    assert (tmp_path / "out" / "labels.csv").is_file()
    for sid in batch.sample_ids:
        assert (tmp_path / "out" / "images" / f"{sid}.png").read_bytes() == (
            root / f"{sid}.png").read_bytes()
    assert before == {p: p.read_bytes() for p in root.rglob("*.png")}  # never modified
    with pytest.raises(ConfigError, match="not empty"):
        export_batch(project, fmt="folder", out=result.path)
