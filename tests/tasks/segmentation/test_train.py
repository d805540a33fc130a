from __future__ import annotations

import dataclasses

import numpy as np
import torch

from medactive.tasks.segmentation.presets import SMOKE, get_preset
from medactive.tasks.segmentation.train import (
    augment,
    predict_volume,
    resize_masks,
    resize_slices,
    train_unet,
)
from medactive.tasks.segmentation.unet import UNet2D


def test_augment_keeps_shapes_labels_and_pairs():
    gen = torch.Generator().manual_seed(0)
    images = torch.zeros(16, 1, 16, 16)
    masks = torch.zeros(16, 16, 16, dtype=torch.long)
    images[:, :, 2:6, 3:9] = 1.0
    masks[:, 2:6, 3:9] = 2
    out_i, out_m = augment(images, masks, gen, 20.0)
    assert out_i.shape == images.shape and out_m.shape == masks.shape
    assert set(out_m.unique().tolist()) <= {0, 2}
    # image and mask move together: the bright pixels are the labeled ones
    for i in range(16):
        bright = out_i[i, 0] > 0.5
        assert (out_m[i][bright] == 2).float().mean() > 0.9
    again_i, again_m = augment(images, masks, torch.Generator().manual_seed(0), 20.0)
    assert torch.equal(out_m, again_m) and torch.equal(out_i, again_i)


def test_resize_round_trip():
    masks = torch.zeros(1, 40, 36, dtype=torch.long)
    masks[0, 10:30, 8:28] = 3
    small = resize_masks(masks, 32)
    assert small.shape == (1, 32, 32) and set(small.unique().tolist()) == {0, 3}
    images = resize_slices(torch.rand(3, 1, 40, 36), 32)
    assert images.shape == (3, 1, 32, 32)


def test_train_keeps_best_validation_weights():
    preset = dataclasses.replace(SMOKE, iterations=4, val_every=1, batch_size=2)
    torch.manual_seed(0)
    net = UNet2D(1, 2, channels=preset.channels)
    images = torch.rand(3, 1, 32, 32)
    masks = (images[:, 0] > 0.5).long()
    scores = iter([0.1, 0.7, 0.3, 0.2])
    states = {}

    def validate(model):
        s = next(scores)
        states[s] = {k: v.clone() for k, v in model.state_dict().items()}
        return s

    net, log = train_unet(net, images, masks, preset, seed=0, validate=validate)
    assert log.best_iteration == 2 and log.best_val == 0.7
    assert [h[0] for h in log.history] == [1, 2, 3, 4]
    for k, v in net.state_dict().items():
        assert torch.equal(v, states[0.7][k])
    assert not net.training


def test_training_is_reproducible():
    preset = get_preset("smoke", iterations=3)
    images = torch.rand(4, 1, 32, 32)
    masks = (images[:, 0] > 0.5).long()
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        net, _ = train_unet(UNet2D(1, 2, channels=preset.channels), images, masks, preset,
                            seed=5)
        outs.append(net(images).detach())
    assert torch.equal(outs[0], outs[1])


def test_predict_volume_returns_original_size():
    net = UNet2D(1, 3, channels=(4, 8, 16, 32, 64)).eval()
    labels = predict_volume(net, torch.rand(5, 1, 32, 32), (40, 36), batch_size=2)
    assert labels.shape == (5, 40, 36) and labels.dtype == torch.int64
    assert set(np.unique(labels.numpy())) <= {0, 1, 2}
