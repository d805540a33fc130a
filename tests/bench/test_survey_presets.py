"""The survey presets run end to end (one unit, one round, one epoch) on fixtures with the
real file layouts: the same code path a CUDA machine takes, with ``--device auto`` falling
back to the CPU here. Only the data, budget, rounds and epochs are overridden."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from medactive.bench import backend
from medactive.bench.store import ResultStore
from medactive.cli import main
from tests.data.conftest import NCT_CLASSES, write_image, write_isic
from tests.segmentation_data import write_h5_layout


def _write_nct(root: Path) -> None:
    """Two 224 px patches per class for the pool (split 9:1 with validation), one for test."""
    for label, name in enumerate(NCT_CLASSES):
        for i in range(3):
            write_image(root / "NCT-CRC-HE-100K" / name / f"{name}-TRAIN{i:02d}.tif",
                        size=(224, 224), mode="RGB", value=label)
        write_image(root / "CRC-VAL-HE-7K" / name / f"{name}-TCGA00.tif", size=(224, 224),
                    mode="RGB", value=label)


@pytest.mark.slow
@pytest.mark.parametrize("preset, folder, budget, metric, expect", [
    ("survey-nct", "nct", 5, "test_accuracy", {"model": "resnet18", "batch_size": 128}),
    ("survey-isic", "isic2020", 5, "test_auc", {"model": "resnet18", "batch_size": 128}),
    ("survey-acdc", "acdc", 2, "test_dice_mean", {"image_size": 256, "batch_size": 32}),
])
def test_survey_preset_runs_one_round(tmp_path, preset, folder, budget, metric, expect):
    data_root = tmp_path / "data"
    {"nct": _write_nct, "isic2020": write_isic, "acdc": write_h5_layout}[folder](
        data_root / folder)
    out = tmp_path / "out"
    assert main(["bench", "--config", preset, "--data-root", str(data_root), "--out", str(out),
                 "--strategies", "badge", "--seeds", "0", "--budgets", str(budget),
                 "--rounds", "1", "--epochs", "1", "--no-supervised", "--no-progress",
                 "--threads", "1"]) == 0
    with ResultStore(out) as store:
        rows = store.rounds()
        options = store.unit_options(store.grids()[0].units()[0])
    assert [(r["round"], r["n_labeled"]) for r in rows] == [(0, budget), (1, 2 * budget)]
    assert all(math.isfinite(r["metrics"][metric]) for r in rows)
    assert len(set(rows[1]["added_ids"])) == budget
    assert options["preset"] == "survey" and options["device"] == "auto"
    described = backend.build_task(options).describe()
    recipe = described.get("training") or described["preset"]
    assert recipe["name"] == "survey"
    assert {k: recipe[k] for k in expect} == expect
