"""Region-based (patch) active learning: tiling, oracle, partial loss, per-patch scores, loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss

from medactive.errors import ConfigError, DataError
from medactive.experiment import ExperimentConfig, run_experiment
from medactive.loop.active_loop import LoopConfig, run_active_learning
from medactive.scoring import uncertainty
from medactive.strategies import create_strategy
from medactive.tasks.segmentation import build_segmentation_task
from medactive.tasks.segmentation.losses import IGNORE_INDEX, partial_dice_ce
from medactive.tasks.segmentation.regions import (
    RegionPool,
    RegionPredictions,
    RegionSegmentationTask,
    check_region_size,
    region_ids,
    tile_offsets,
)
from medactive.tasks.segmentation.train import augment, resize_masks
from tests.pinned import pins_apply

SIZE, PATCH = 32, 16  # smoke preset: 32 px slices, 4 patches each


# ---------------------------------------------------------------- tiling
def test_tiles_of_an_8x8_image_with_patch_4():
    assert tile_offsets(8, 4) == [(0, 0, 4, 4), (0, 4, 4, 4), (4, 0, 4, 4), (4, 4, 4, 4)]
    assert list(region_ids(["a", "b"], 8, 4)) == [
        "a@0,0", "a@0,4", "a@4,0", "a@4,4", "b@0,0", "b@0,4", "b@4,0", "b@4,4"]


def test_tiles_that_do_not_divide_cover_every_pixel_once():
    tiles = tile_offsets(10, 4)
    assert [(r, c) for r, c, _, _ in tiles][:3] == [(0, 0), (0, 4), (0, 8)]
    assert tiles[2] == (0, 8, 4, 2) and tiles[-1] == (8, 8, 2, 2)
    cover = np.zeros((10, 10), int)
    for r, c, h, w in tiles:
        cover[r:r + h, c:c + w] += 1
    assert (cover == 1).all()
    assert tile_offsets(8, 8) == [(0, 0, 8, 8)]


@pytest.mark.parametrize("bad", [0, -4, 33, 2.5, True, "16"])
def test_bad_region_size_is_refused(bad):
    with pytest.raises(ConfigError, match="region size"):
        check_region_size(bad, 32)


# ---------------------------------------------------------------- partial loss
@pytest.mark.parametrize("batch", [False, True])
def test_partial_loss_equals_dice_ce_when_all_labelled(batch):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 8, 8, generator=gen)
    target = torch.randint(0, 4, (3, 8, 8), generator=gen)
    expected = DiceCELoss(to_onehot_y=True, softmax=True, batch=batch)(logits, target[:, None])
    got = partial_dice_ce(logits, target, batch=batch)
    assert float(got) == pytest.approx(float(expected), rel=1e-6, abs=1e-7)


def test_partial_loss_ignores_unlabelled_pixels():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 8, 8, generator=gen)
    target = torch.randint(0, 3, (2, 8, 8), generator=gen)
    labelled = torch.zeros(2, 8, 8, dtype=torch.bool)
    labelled[0, :4, :4] = True  # one 4x4 patch of slice 0, two of slice 1
    labelled[1, 4:, :] = True
    other = target.clone()
    other[~labelled] = (target[~labelled] + 1) % 3  # different truth outside the labels

    def loss_and_grad(t, mask):
        z = logits.clone().requires_grad_(True)
        loss = partial_dice_ce(z, t, mask)
        return float(loss.detach()), torch.autograd.grad(loss, z)[0]

    loss_a, grad_a = loss_and_grad(target, labelled)
    loss_b, grad_b = loss_and_grad(other, labelled)
    assert loss_a == pytest.approx(loss_b, abs=0) and torch.equal(grad_a, grad_b)
    assert (grad_a.abs().sum(dim=1)[~labelled] == 0).all()  # no gradient from unlabelled pixels
    # the IGNORE_INDEX encoding gives the same loss as the explicit mask
    ignored = torch.where(labelled, target, torch.full_like(target, IGNORE_INDEX))
    assert float(partial_dice_ce(logits, ignored)) == pytest.approx(loss_a, rel=1e-7)
    # nothing labelled: finite, no NaN
    none = torch.full_like(target, IGNORE_INDEX)
    assert torch.isfinite(partial_dice_ce(logits, none))


def test_partial_loss_doctest_value():
    target = torch.tensor([[[0, 1], [IGNORE_INDEX, IGNORE_INDEX]]])
    assert float(partial_dice_ce(torch.zeros(1, 2, 2, 2), target)) == pytest.approx(
        0.5 + np.log(2), abs=1e-4)


def test_augmentation_moves_the_unlabelled_marker_with_the_labels():
    gen = torch.Generator().manual_seed(3)
    masks = torch.randint(0, 3, (16, 8, 8), generator=gen)
    labelled = torch.zeros(16, 8, 8, dtype=torch.bool)
    labelled[:, :4, 4:] = True  # top-right patch only
    masks[~labelled] = IGNORE_INDEX
    images = labelled[:, None].float()  # the image shows where the labels are
    x, y = augment(images, masks, torch.Generator().manual_seed(0), rotation_degrees=0.0)
    assert torch.equal(y != IGNORE_INDEX, x[:, 0] > 0.5)
    assert ((y != IGNORE_INDEX).sum(dim=(1, 2)) == 16).all()
    moved = [i for i in range(16) if not torch.equal(y[i], masks[i])]
    assert moved  # some rot90/flip happened, and the labels moved with the marker


# ---------------------------------------------------------------- per-patch reduction
class _FakeSlices:
    """Stands in for SegmentationPredictions: fixed probabilities, one batch per slice."""

    def __init__(self, probas: np.ndarray, reduction: str = "mean") -> None:
        self.probas = probas
        self.reduction = reduction
        self.n_mc_samples = 2
        self.net = type("Net", (), {"n_classes": probas.shape[1]})()

    def _batches(self, field, idx):
        for number, i in enumerate(idx.tolist()):
            yield number, self.probas[[i]]


def _hand_probas() -> np.ndarray:
    """1 slice, 2 classes, 4x4: foreground probability per pixel in the quadrants."""
    fg = np.array([[0.0, 0.2, 0.5, 0.5],
                   [0.2, 0.2, 0.5, 0.5],
                   [1.0, 0.0, 0.1, 0.3],
                   [0.0, 0.0, 0.3, 0.1]])
    return np.stack([1 - fg, fg])[None]


@pytest.mark.parametrize("reduction, expected", [
    ("mean", [0.15, 0.5, 0.25, 0.2]),
    ("max", [0.2, 0.5, 1.0, 0.3]),
    # foreground-weighted mean of the foreground probability: sum(fg^2) / sum(fg)
    ("foreground", [0.2, 0.5, 1.0, 0.2 / 0.8]),
])
def test_scores_are_reduced_per_patch(reduction, expected):
    preds = RegionPredictions(_FakeSlices(_hand_probas(), reduction),
                              RegionPool.tiled(["s"], 4, 2))
    scores = preds.score(lambda p: p[:, 1], "probas", np.array([3, 0, 1, 2]))
    np.testing.assert_allclose(scores, np.array(expected)[[3, 0, 1, 2]], rtol=1e-12)


def test_dense_crops_and_refusals():
    preds = RegionPredictions(_FakeSlices(_hand_probas()), RegionPool.tiled(["s"], 4, 2))
    crops = preds.get("probas", np.array([1, 2]))
    assert crops.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(crops[0, 1], 0.5)
    np.testing.assert_allclose(crops[1, 1], [[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ConfigError, match="per slice"):
        preds.score(lambda p: p[:, 1].mean(axis=(1, 2)), "probas", np.array([0]))
    uneven = RegionPredictions(_FakeSlices(_hand_probas()), RegionPool.tiled(["s"], 4, 3))
    with pytest.raises(ConfigError, match="equal patches"):
        uneven.get("probas", np.array([0]))


def _original_twin(pool: RegionPool) -> RegionPool:
    """The same patches as an original-frame pool whose slices are already network-sized."""
    return RegionPool(ids=pool.ids, slices=pool.slices, boxes=pool.boxes,
                      slice_shapes=pool.slice_shapes, frame="original",
                      network_size=pool.network_size, region_size=pool.region_size)


def test_original_frame_equal_to_the_network_frame_scores_and_selects_alike():
    """4x4 slice, 2x2 patches: mean binary entropy per patch is 0.375 (pixels 0, .2, .2, .2),
    ln 2 (all .5), 0 (1, 0, 0, 0) and 0.468 (.1, .3, .3, .1): entropy picks @0,2 then @2,2."""
    network = RegionPool.tiled(["s"], 4, 2)
    original = _original_twin(network)
    assert original.frame == "original" and np.array_equal(original.network_boxes, network.boxes)
    picked = []
    for pool in (network, original):
        preds = RegionPredictions(_FakeSlices(_hand_probas()), pool)
        np.testing.assert_allclose(preds.score(lambda p: p[:, 1], "probas", np.arange(4)),
                                   [0.15, 0.5, 0.25, 0.2], rtol=1e-12)
        result = create_strategy("entropy").query(preds, np.arange(4), np.array([], int), 2,
                                                  rng=0)
        picked.append(pool.ids[result.indices].tolist())
    assert picked == [["s@0,2", "s@2,2"], ["s@0,2", "s@2,2"]]


def test_original_frame_resizes_scores_to_the_slice():
    """An 8x8 original slice seen by a 4x4 network: a score that is the network column index
    0..3 is resized (bilinear, pixel centres) to the 8 columns 0, .25, .75, 1.25, 1.75, 2.25,
    2.75, 3 and averaged per 4x4 patch: 0.5625 on the left, 2.4375 on the right."""
    pool = RegionPool(ids=["s@0,0", "s@0,4", "s@4,0", "s@4,4"], slices=[0, 0, 0, 0],
                      boxes=[(0, 0, 4, 4), (0, 4, 4, 4), (4, 0, 4, 4), (4, 4, 4, 4)],
                      slice_shapes=[(8, 8)], frame="original", network_size=4, region_size=4)
    assert pool.network_boxes.tolist() == [[0, 0, 2, 2], [0, 2, 2, 2], [2, 0, 2, 2],
                                           [2, 2, 2, 2]]
    ramp = np.tile(np.arange(4.0), (4, 1))
    preds = RegionPredictions(_FakeSlices(_hand_probas()), pool)
    scores = preds.score(lambda p: np.broadcast_to(ramp, (len(p), 4, 4)), "probas",
                         np.arange(4))
    np.testing.assert_allclose(scores, [0.5625, 2.4375, 0.5625, 2.4375], rtol=1e-12)


def test_region_pool_refuses_inconsistent_input():
    with pytest.raises(ValueError, match="unknown region frame"):
        RegionPool(ids=["a@0,0"], slices=[0], boxes=[(0, 0, 2, 2)], slice_shapes=[(2, 2)],
                   frame="resized", network_size=2, region_size=2)
    with pytest.raises(ValueError, match="same length"):
        RegionPool(ids=["a@0,0", "a@0,2"], slices=[0], boxes=[(0, 0, 2, 2)],
                   slice_shapes=[(2, 2)], frame="original", network_size=2, region_size=2)
    with pytest.raises(ValueError, match="network-frame slices are 4x4"):
        RegionPool(ids=["a@0,0"], slices=[0], boxes=[(0, 0, 2, 2)], slice_shapes=[(2, 2)],
                   frame="network", network_size=4, region_size=2)
    with pytest.raises(ConfigError, match="region size"):
        RegionPool.tiled(["a"], 4, 5)


# ---------------------------------------------------------------- the task
@pytest.fixture(scope="module")
def root(tmp_path_factory, seg):
    return seg.write_h5_layout(tmp_path_factory.mktemp("regions") / "acdc")


@pytest.fixture(scope="module")
def task(root):
    return build_segmentation_task(root, preset="smoke", iterations=3, region_size=PATCH)


@pytest.fixture(scope="module")
def model(task):
    idx = np.array([0, 5, 9, 20])
    return task.fit(idx, task.pool_labels(idx), seed=0)


def test_pool_is_patches_in_slice_then_row_major_order(task):
    assert isinstance(task, RegionSegmentationTask)
    n_slices = len(task.base.pool_ids)
    assert len(task.pool_ids) == 4 * n_slices == 48
    first = task.base.pool_ids[0]
    assert list(task.pool_ids[:4]) == [f"{first}@0,0", f"{first}@0,16", f"{first}@16,0",
                                       f"{first}@16,16"]
    assert task.pool_ids[4].startswith(f"{task.base.pool_ids[1]}@")
    assert len(set(task.pool_ids)) == len(task.pool_ids)
    assert task.describe()["region"]["patches_per_slice"] == 4


def test_oracle_reveals_only_the_patch(task):
    truth = task.base.pool_labels(np.array([1]))[0]
    resized = resize_masks(torch.from_numpy(truth.astype(np.int64))[None], SIZE)[0].numpy()
    (label,) = task.pool_labels(np.array([4 + 3]))  # slice 1, patch at (16, 16)
    assert label.shape == (PATCH, PATCH) and label.dtype == np.uint8
    np.testing.assert_array_equal(label, resized[16:, 16:])
    slices, maps = task.label_maps(np.array([7]), [label])
    assert list(slices) == [1] and maps.shape == (1, SIZE, SIZE)
    np.testing.assert_array_equal(maps[0, 16:, 16:].numpy(), resized[16:, 16:])
    outside = maps[0].clone()
    outside[16:, 16:] = IGNORE_INDEX
    assert (outside == IGNORE_INDEX).all()
    # a full resized map is accepted too: only the patch is read
    _, again = task.label_maps(np.array([7]), [resized])
    assert torch.equal(again, maps)


def test_bad_patch_labels_are_refused(task):
    with pytest.raises(DataError, match=r"@16,16.*shape"):
        task.label_maps(np.array([3]), [np.zeros((5, 5), np.uint8)])
    with pytest.raises(DataError, match=r"@16,16.*integers 0\.\."):
        task.label_maps(np.array([3]), [np.full((PATCH, PATCH), 9, np.uint8)])


def test_label_metrics(task):
    metrics = task.label_metrics(np.array([0, 1, 5, 5]))
    assert metrics == {"labelled_pixel_fraction": 3 * PATCH ** 2 / (12 * SIZE ** 2),
                       "n_labelled_slices": 2.0}


def test_fit_trains_on_slices_with_labelled_patches(task, model):
    assert task.last_model is model and task.last_fit.iterations == 3
    metrics = task.evaluate(model, "test")
    assert 0.0 <= metrics["dice_mean"] <= 1.0


@pytest.mark.parametrize("name", ["entropy", "random", "bald", "coreset_l2", "badge",
                                  "typiclust", "margin", "mean_variance"])
def test_queries_return_new_unique_patches(task, model, name):
    labeled = np.array([0, 5, 9, 20])
    unlabeled = np.setdiff1d(np.arange(len(task.pool_ids)), labeled)
    strategy = create_strategy(name)
    results = [strategy.query(task.predictions(model, seed=1), unlabeled, labeled, 6, rng=7)
               for _ in range(2)]
    idx = results[0].indices
    assert idx.size == 6 and np.unique(idx).size == 6
    assert not set(idx.tolist()) & set(labeled.tolist())
    assert set(idx.tolist()) <= set(unlabeled.tolist())
    np.testing.assert_array_equal(idx, results[1].indices)  # same seed, same selection


def test_embeddings_differ_between_patches_of_a_slice(task, model):
    preds = task.predictions(model, seed=0)
    emb = preds.get("embeddings", np.arange(4))
    assert emb.shape == (4, task.base.preset.channels[0])
    assert not np.allclose(emb[0], emb[3])
    grads = preds.gradient_embeddings_array(np.array([2, 0]))
    assert grads.shape == (2, len(task.classes) * task.base.preset.channels[0])
    np.testing.assert_allclose(grads[1], preds.gradient_embeddings_array(np.array([0]))[0],
                               rtol=1e-5, atol=1e-7)


def test_patch_scores_match_a_dense_reference(task, model):
    preds = task.predictions(model, seed=0)
    idx = np.array([13, 2, 0, 47])
    scores = preds.score(uncertainty.entropy, "probas", idx)
    dense = preds.slices.get("probas", np.array([3, 0, 11]))
    pixel = uncertainty.entropy(dense)
    expected = [pixel[0, :16, 16:].mean(), pixel[1, 16:, :16].mean(), pixel[1, :16, :16].mean(),
                pixel[2, 16:, 16:].mean()]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_loop_labels_patches_and_records_the_labelled_area(root, task, tmp_path):
    config = ExperimentConfig(data=str(root), strategy="entropy", initial=4, budget=3, rounds=2,
                              seed=0, task="segmentation", preset="smoke", epochs=3,
                              device="cpu", data_options={"region_size": PATCH})
    records = run_experiment(config, out_dir=tmp_path / "a", task=task)
    assert [r.n_labeled for r in records] == [4, 7, 10]
    fractions = [r.metrics["labelled_pixel_fraction"] for r in records]
    step = 3 * PATCH ** 2 / (12 * SIZE ** 2)
    assert fractions[0] == pytest.approx(4 * PATCH ** 2 / (12 * SIZE ** 2))
    assert np.diff(fractions) == pytest.approx([step, step], abs=1e-12)
    assert all(1 <= r.metrics["n_labelled_slices"] <= r.n_labeled for r in records)
    again = run_experiment(config, out_dir=tmp_path / "b", task=task)
    for a, b in zip(records, again, strict=True):
        np.testing.assert_array_equal(a.added_idx, b.added_idx)
        np.testing.assert_array_equal(a.queried_idx, b.queried_idx)
    assert (tmp_path / "a" / "rounds.csv").read_text() == (tmp_path / "b" / "rounds.csv"
                                                           ).read_text()
    # the plain loop (what the benchmark runner calls) selects the same patches
    plain = run_active_learning(task, LoopConfig("entropy", 4, 3, 2, seed=0))
    np.testing.assert_array_equal(plain[1].added_idx, records[1].added_idx)


def test_task_takes_a_region_size_or_a_pool(task):
    with pytest.raises(ValueError, match="not both or neither"):
        RegionSegmentationTask(task.base)
    with pytest.raises(ValueError, match="not both or neither"):
        RegionSegmentationTask(task.base, PATCH, pool=task.pool)
    with pytest.raises(ValueError, match="12 slices"):
        RegionSegmentationTask(task.base, pool=RegionPool.tiled(["a"], SIZE, PATCH))


def test_region_size_must_fit_the_network_input(root):
    with pytest.raises(ConfigError, match="region size 64"):
        build_segmentation_task(root, preset="smoke", region_size=64)


#: selections of the simulated region task (40 steps on patches 0, 5, 9, 20), recorded before
#: the region pool carried its coordinate frame (issue 14): they must not change (on the CPU
#: family they were recorded on: see tests/pinned.py)
PINNED_QUERIES: dict[str, tuple[list[int], list[float]]] = {
    "entropy": ([10, 22, 18, 26, 46],
                [1.366838958, 1.366823012, 1.366772351, 1.366616108, 1.366406319]),
    # re-recorded in issue 11: each patch's MC-dropout masks now come from its own stream
    "bald": ([33, 32, 19, 23, 35],
             [0.01377298059, 0.01095952554, 0.01000100126, 0.009645329523, 0.009241556922]),
    "coreset_l2": ([38, 36, 15, 22, 11],
                   [0.1334015157, 0.1291754075, 0.1212148261, 0.102784056, 0.08920275305]),
    "badge": ([12, 28, 43, 36, 15],
              [0.1845127824, 0.004275010642, 0.03473459601, 0.009420864322, 0.02872997735]),
    "typiclust": ([42, 39, 32, 14, 31],
                  [39.95340447, 33.49412583, 27.05959004, 30.73505586, 33.39089176]),
    "margin": ([12, 44, 16, 8, 4],
               [0.9818573561, 0.980604062, 0.9805061902, 0.9802239135, 0.9794930013]),
}


@pytest.fixture(scope="module")
def trained(root):
    task = build_segmentation_task(root, preset="smoke", iterations=40, region_size=PATCH)
    labeled = np.array([0, 5, 9, 20])
    return task, task.fit(labeled, task.pool_labels(labeled), seed=0), labeled


@pytest.mark.slow
@pytest.mark.parametrize("name", ["entropy", "bald", "coreset_l2", "badge", "typiclust",
                                  "margin"])
def test_region_query_selections_are_pinned(trained, name):
    task, model, labeled = trained
    unlabeled = np.setdiff1d(np.arange(len(task.pool_ids)), labeled)
    result = create_strategy(name).query(task.predictions(model, seed=1), unlabeled, labeled, 5,
                                         rng=7)
    # the same seeds, the same picks and scores from fresh predictions (any CPU)
    again = create_strategy(name).query(task.predictions(model, seed=1), unlabeled, labeled, 5,
                                        rng=7)
    assert again.indices.tolist() == result.indices.tolist()
    assert np.array_equal(np.asarray(again.scores, float), np.asarray(result.scores, float),
                          equal_nan=True)
    if not pins_apply():  # pins are compared on the CPU family they were recorded on
        return
    idx, scores = PINNED_QUERIES[name]
    assert result.indices.tolist() == idx
    np.testing.assert_allclose(np.asarray(result.scores, float), scores, rtol=1e-6, atol=1e-9)
