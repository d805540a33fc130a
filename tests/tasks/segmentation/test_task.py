from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medactive.errors import ConfigError, DataError
from medactive.loop.active_loop import LoopConfig, run_active_learning
from medactive.strategies import create_strategy, list_strategies
from medactive.tasks.segmentation import build_segmentation_task
from medactive.tasks.segmentation.predictions import SegmentationPredictions

KEYS = {f"{m}_{k}" for m in ("dice", "asd", "hd95") for k in ("mean", "rv", "myo", "lv")}


@pytest.fixture(scope="module")
def task(tmp_path_factory, seg):
    root = seg.write_h5_layout(tmp_path_factory.mktemp("seg") / "acdc")
    return build_segmentation_task(root, preset="smoke", iterations=4)


@pytest.fixture(scope="module")
def model(task):
    idx = np.array([0, 3, 7])
    return task.fit(idx, task.pool_labels(idx), seed=0)


def test_pool_and_labels(task, seg):
    assert task.kind == "segmentation" and task.primary_metric == "dice_mean"
    assert len(task.pool_ids) == 12 and all("_frame01_" in i for i in task.pool_ids)
    labels = task.pool_labels(np.array([2, 5]))
    assert len(labels) == 2 and labels[0].shape == (seg.H, seg.W)
    assert labels[0].dtype == np.uint8


def test_evaluate_keys_and_ranges(task, model):
    for split in ("val", "test"):
        metrics = task.evaluate(model, split)
        assert set(metrics) == KEYS
        assert 0.0 <= metrics["dice_mean"] <= 1.0
        assert metrics["dice_mean"] == pytest.approx(
            np.mean([metrics["dice_rv"], metrics["dice_myo"], metrics["dice_lv"]]))
        assert all(np.isfinite(v) and v >= 0 for v in metrics.values())
    with pytest.raises(ConfigError, match="split"):
        task.evaluate(model, "train")


def test_describe_is_json_and_says_voxels(task):
    info = json.loads(json.dumps(task.describe()))
    assert info["metrics"]["distance_unit"] == "voxel"
    assert info["preset"]["name"] == "smoke" and info["preset"]["deviations"]
    assert "voxels" in info["data"]["spacing_source"]


def test_fit_rejects_bad_labels(task, seg):
    with pytest.raises(DataError, match=r"patient003_frame01_slice_1.*mask shape"):
        task.fit(np.array([0]), [np.zeros((seg.H + 1, seg.W), np.uint8)], seed=0)
    bad = np.zeros((seg.H, seg.W), np.uint8)
    bad[0, 0] = 9
    with pytest.raises(DataError, match=r"patient003_frame01_slice_1.*outside the class set"):
        task.fit(np.array([0]), [bad], seed=0)


def test_finetune_leaves_the_previous_model_alone(task, model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    idx = np.array([1, 2])
    tuned = task.fit(idx, task.pool_labels(idx), seed=1, init_model=model)
    assert tuned is not model
    assert all((before[k] == v).all() for k, v in model.state_dict().items())


def test_predictions_object(task, model):
    preds = task.predictions(model, seed=0)
    assert isinstance(preds, SegmentationPredictions)
    assert preds.n_mc_samples == task.preset.n_mc_samples


#: strategies refused for segmentation in one line (their fields or scores are classification's)
CLASSIFICATION_ONLY = {"vaal", "batchbald", "egl", "egl_entropy", "dfal", "ensemble_entropy",
                       "ensemble_bald", "qbc_vote_entropy", "qbc_kl", "evidential",
                       "evidential_epistemic"}
#: strategies whose field needs a training option (its runs: tests/strategies/*_runs.py)
NEEDS_TRAINING_OPTION = {"learning_loss"}


# every registered strategy, except test doubles that other test modules register
@pytest.mark.parametrize("name", [n for n in list_strategies() if not n.startswith("fake")
                                  and n not in CLASSIFICATION_ONLY | NEEDS_TRAINING_OPTION])
def test_every_strategy_queries_slices(task, model, name):
    labeled = np.array([0, 3, 7])
    unlabeled = np.setdiff1d(np.arange(len(task.pool_ids)), labeled)
    results = [create_strategy(name).query(task.predictions(model, seed=3, labeled_idx=labeled),
                                           unlabeled, labeled, 4, rng=11) for _ in range(2)]
    idx = results[0].indices
    assert idx.size == 4 and np.unique(idx).size == 4 and np.isin(idx, unlabeled).all()
    np.testing.assert_array_equal(idx, results[1].indices)


@pytest.mark.parametrize("name", sorted(CLASSIFICATION_ONLY | NEEDS_TRAINING_OPTION))
def test_classification_only_strategies_are_refused_in_one_line(task, model, name):
    labeled = np.array([0, 3, 7])
    unlabeled = np.setdiff1d(np.arange(len(task.pool_ids)), labeled)
    with pytest.raises(ConfigError) as err:
        create_strategy(name).query(task.predictions(model, seed=3, labeled_idx=labeled),
                                    unlabeled, labeled, 4, rng=11)
    assert "\n" not in str(err.value)


def test_loop_smoke_run_with_three_strategies(task):
    selections = {}
    for name in ("random", "entropy", "badge"):
        records = run_active_learning(task, LoopConfig(strategy=name, initial=4, budget=2,
                                                       rounds=1, seed=0))
        assert [r.n_labeled for r in records] == [4, 6]
        assert set(records[-1].metrics) == {f"{s}_{k}" for s in ("val", "test") for k in KEYS}
        selections[name] = task.pool_ids[records[0].queried_idx]
        assert all("_frame01_" in i for i in selections[name])
    again = run_active_learning(task, LoopConfig(strategy="entropy", initial=4, budget=2,
                                                 rounds=1, seed=0))
    np.testing.assert_array_equal(task.pool_ids[again[0].queried_idx], selections["entropy"])


def test_factory_errors(tmp_path, seg):
    root = seg.write_h5_layout(tmp_path / "acdc", train_patients=(3, 4), n_slices=2)
    with pytest.raises(ConfigError, match="unknown segmentation preset"):
        build_segmentation_task(root, preset="gpu")
    with pytest.raises(ConfigError, match="reduction"):
        build_segmentation_task(root, preset="smoke", reduction="median")
    with pytest.raises(DataError, match="not a folder"):
        build_segmentation_task(tmp_path / "missing")
    with pytest.raises(ConfigError, match="unknown segmentation training option"):
        build_segmentation_task(root, preset="smoke", train_options={"augmentation": "isic"})


def test_factory_options(tmp_path, seg):
    root = seg.write_h5_layout(tmp_path / "acdc", train_patients=(3, 4), n_slices=2)
    task = build_segmentation_task(root, preset="smoke", reduction="foreground_mean",
                                   image_size=48, train_options={"n_mc_samples": 3},
                                   frames="both")
    assert task.reduction == "foreground" and task.preset.image_size == 48
    assert task.predictions(task.new_model(0), seed=0).n_mc_samples == 3
    assert len(task.pool_ids) == 2 * 2 * 2
    model = task.fit(np.array([0, 5]), task.pool_labels(np.array([0, 5])), seed=0)
    assert task.last_model is model and task.last_fit.iterations == task.preset.iterations


def test_nifti_task_reports_mm(tmp_path, seg):
    root = seg.write_acdc_nifti(tmp_path / "raw")
    task = build_segmentation_task(root, preset="smoke", iterations=2)
    idx = np.array([0, 1])
    metrics = task.evaluate(task.fit(idx, task.pool_labels(idx), seed=0), "test")
    assert set(metrics) == KEYS
    assert task.describe()["metrics"]["distance_unit"] == "mm"


@pytest.mark.slow
def test_real_acdc_smoke_round(acdc_h5_real: Path):
    task = build_segmentation_task(acdc_h5_real, preset="smoke", iterations=2)
    assert len(task.pool_ids) == 656
    records = run_active_learning(task, LoopConfig(strategy="entropy", initial=10, budget=10,
                                                   rounds=1, seed=0))
    picked = task.pool_ids[records[0].queried_idx]
    assert picked.size == 10 and all("_frame01_" in p for p in picked)
    assert 0.0 <= records[-1].metrics["test_dice_mean"] <= 1.0
