"""Test-time augmentation stacks (``"tta_probas"``): invariance, inversion, chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.errors import ConfigError
from medactive.scoring.augmentation import tta_kl
from medactive.tasks.tta import (
    DIHEDRAL,
    classification_tta,
    dihedral,
    dihedral_inverse,
    segmentation_tta,
)

N, C, H, W = 6, 1, 8, 8


def _images():
    g = torch.Generator().manual_seed(0)
    pool = torch.rand(N, C, H, W, generator=g)
    return lambda idx: pool[torch.as_tensor(np.array(idx))]


def _two_class(score: torch.Tensor) -> torch.Tensor:
    return torch.softmax(torch.stack([4 * score, -4 * score], 1), dim=1)


def pixel_mean(x):  # [m, C, H, W] -> [m, 2]: invariant to flips and rotations of the grid
    return _two_class(x.mean(dim=(1, 2, 3)))


def left_half(x):  # reads the left half only: a horizontal flip changes its output
    return _two_class(x[..., : x.shape[-1] // 2].mean(dim=(1, 2, 3)))


def _tta(forward, idx=None, **kw):
    idx = np.arange(N) if idx is None else idx
    return classification_tta(forward, _images(), idx, n_augmentations=kw.pop("t", 8), seed=3,
                              n_classes=2, **kw)


def test_flip_invariant_model_scores_zero_and_a_non_invariant_one_does_not():
    flips_only = {"max_rotation": 0.0, "max_intensity": 0.0}
    stack = _tta(pixel_mean, **flips_only)
    assert stack.shape == (N, 2, 8)
    np.testing.assert_allclose(tta_kl(stack), 0.0, atol=1e-10)
    assert (tta_kl(_tta(left_half, **flips_only)) > 1e-4).all()
    # the full recipe changes intensities, so even the pixel mean moves a little
    assert (tta_kl(_tta(pixel_mean)) > 0).all()


def test_stack_is_the_same_whatever_the_chunking_and_order():
    whole = _tta(left_half, batch_size=8 * N)
    one_by_one = _tta(left_half, batch_size=8)
    np.testing.assert_allclose(whole, one_by_one, atol=1e-6)
    reversed_ = _tta(left_half, idx=np.arange(N)[::-1], batch_size=16)
    np.testing.assert_allclose(whole[::-1], reversed_, atol=1e-6)
    other_seed = classification_tta(left_half, _images(), np.arange(N), n_augmentations=8,
                                    seed=4, n_classes=2)
    assert not np.allclose(whole, other_seed)


def test_n_augmentations_is_checked():
    with pytest.raises(ConfigError, match="n_augmentations"):
        _tta(pixel_mean, t=1)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (2, 3, 4, 6)])
def test_dihedral_inverse_undoes_each_element(shape):
    x = torch.arange(np.prod(shape), dtype=torch.float32).reshape(shape)
    for k, flip in DIHEDRAL:
        if shape[-1] != shape[-2] and k % 2:
            continue
        torch.testing.assert_close(dihedral_inverse(dihedral(x, k, flip), k, flip), x)
    assert not torch.equal(dihedral(x, 0, True), x)


def pixelwise(x):  # an "identity" segmentation model: each pixel's logits from its own value
    return torch.cat([3 * x, -3 * x], dim=1)


def shifted(x):  # not equivariant: each pixel reads its right-hand neighbour
    return pixelwise(torch.roll(x, shifts=-1, dims=-1))


@pytest.mark.parametrize("size", [(8, 8), (8, 12)])
def test_segmentation_views_are_mapped_back_to_the_original_frame(size):
    x = torch.rand(5, 1, *size, generator=torch.Generator().manual_seed(1))
    stack = segmentation_tta(pixelwise, x, np.arange(5), n_augmentations=8, seed=0)
    assert stack.shape == (5, 2, *size, 8)
    expected = torch.softmax(pixelwise(x), dim=1).numpy()
    for t in range(8):
        np.testing.assert_allclose(stack[..., t], expected, atol=1e-6)
    np.testing.assert_allclose(tta_kl(stack), 0.0, atol=1e-6)
    assert tta_kl(segmentation_tta(shifted, x, np.arange(5), n_augmentations=8,
                                   seed=0)).mean() > 1e-3


def test_segmentation_stack_is_the_same_whatever_the_chunking():
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    idx = np.arange(10, 16)
    whole = segmentation_tta(shifted, x, idx, n_augmentations=5, seed=7)
    parts = np.concatenate([segmentation_tta(shifted, x[i:i + 2], idx[i:i + 2],
                                             n_augmentations=5, seed=7) for i in (0, 2, 4)])
    np.testing.assert_array_equal(whole, parts)


# -- the classification task's provider (finetune and frozen) ----------------------------------
@pytest.fixture
def toy():
    from tests.tasks.classification.test_task_modes import _dataset

    return _dataset()


def _task(toy, **kw):
    from medactive.tasks.classification import ClassificationTask, get_preset

    return ClassificationTask(toy, get_preset("smoke"), **kw)


def _check_stack(preds, idx, t):
    stack = preds.get("tta_probas", idx)
    assert stack.shape == (idx.size, 2, t)
    np.testing.assert_allclose(stack.sum(axis=1), 1.0, atol=1e-6)
    return stack


@pytest.mark.slow
def test_finetune_provider_routes_n_augmentations_and_ignores_chunking(toy):
    task = _task(toy, chunk_size=None)
    idx = np.arange(10)
    model = task.fit(idx, task.pool_labels(idx), seed=0)
    rest = np.arange(10, 30)
    whole = _check_stack(task.predictions(model, seed=1), rest, 8)
    chunked = task.predictions(model, seed=1)
    chunked.chunk_size = 3
    np.testing.assert_allclose(_check_stack(chunked, rest, 8), whole, atol=1e-6)
    preds = task.predictions(model, seed=1)
    preds.n_augmentations = 3  # what the cycle does with tta_kl's n_augmentations option
    _check_stack(preds, rest, 3)


@pytest.mark.slow
def test_frozen_provider_embeds_the_augmented_images(toy, tmp_path, monkeypatch):
    import medactive.tasks.tta as tta_module
    from medactive.encoders import load_encoder
    from medactive.tasks.classification.head import HeadConfig, head_probas
    from tests.tasks.classification.test_task_modes import write_tiny_encoder

    monkeypatch.setenv("MEDACTIVE_CACHE", str(tmp_path / "cache"))
    encoder = load_encoder(str(write_tiny_encoder(tmp_path / "enc.pt")), in_channels=1)
    task = _task(toy, encoder=encoder, train_mode="frozen", head=HeadConfig(steps=30))
    idx = np.arange(10)
    head = task.fit(idx, task.pool_labels(idx), seed=0)
    rest = np.arange(10, 30)
    stack = _check_stack(task.predictions(head, seed=1), rest, 8)
    assert tta_kl(stack).max() > 0  # the encoder saw different images
    # with every transform switched off, each view is the head on the fixed embeddings
    monkeypatch.setattr(tta_module, "classification_params",
                        lambda seed, rows, t, **kw: torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(
                            len(rows) * t, 1))
    plain = _check_stack(task.predictions(head, seed=1), rest, 8)
    expected = head_probas(head, task.embeddings("train")[rest])
    np.testing.assert_allclose(plain, np.repeat(expected[..., None], 8, axis=-1), atol=1e-5)


# -- segmentation predictions (the U-Net's provider) -------------------------------------------
@pytest.fixture(scope="module")
def unet_and_slices():
    from medactive.tasks.segmentation.unet import UNet2D

    torch.manual_seed(0)
    return UNet2D(1, 3, channels=(4, 8, 16, 32, 64), dropout=0.2).eval(), torch.rand(7, 1, 32, 32)


def test_segmentation_predictions_stream_the_stack_and_reduce_it_per_slice(unet_and_slices):
    from medactive.tasks.segmentation.predictions import SegmentationPredictions

    net, images = unet_and_slices
    idx = np.array([5, 0, 3, 6])
    one = SegmentationPredictions(net, images, seed=2, batch_size=1)
    stack = one.get("tta_probas", idx)
    assert stack.shape == (4, 3, 32, 32, 8)
    many = SegmentationPredictions(net, images, seed=2, batch_size=4)
    np.testing.assert_allclose(many.get("tta_probas", idx), stack, atol=1e-6)
    np.testing.assert_allclose(many.score(tta_kl, "tta_probas", idx),
                               tta_kl(stack).mean(axis=(1, 2)), rtol=1e-5)
    assert (many.score(tta_kl, "tta_probas", idx) > 0).all()  # a random U-Net is not equivariant
    many.n_augmentations = 3  # the cycle's routing of tta_kl's option
    assert many.get("tta_probas", idx[:2]).shape == (2, 3, 32, 32, 3)
    assert many.get("tta_probas", idx[:0]).shape == (0, 3, 32, 32, 3)


def test_region_queries_refuse_tta_kl():
    from medactive.tasks.segmentation.regions import RegionPool, RegionPredictions
    from tests.tasks.segmentation.test_regions import _FakeSlices, _hand_probas

    preds = RegionPredictions(_FakeSlices(_hand_probas()), RegionPool.tiled(["s"], 4, 2))
    with pytest.raises(ConfigError, match="tta_kl scores whole slices"):
        preds.score(tta_kl, "tta_probas", np.array([0]))
