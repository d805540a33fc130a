"""Early stopping at a validation plateau (``patience``): the converged reference's recipe."""

from __future__ import annotations

import numpy as np
import torch

from medactive.tasks.classification import get_preset
from medactive.tasks.classification.train import fit_classifier
from medactive.tasks.segmentation.presets import get_preset as seg_preset
from medactive.tasks.segmentation.train import train_unet
from medactive.tasks.segmentation.unet import UNet2D
from tests.tasks.classification.test_train import _toy_split


def _scores(values):
    calls = []

    def validate(model):
        calls.append(len(calls))
        return values[len(calls) - 1] if len(calls) <= len(values) else 0.0
    return validate, calls


def test_classifier_stops_after_patience_validations_without_improvement():
    # best at the 2nd validation (epoch 2), then 3 worse ones: with patience 3 the 5th
    # validation (epoch 5) is the last of at most 50 epochs
    validate, calls = _scores([0.5, 0.9, 0.8, 0.7, 0.6, 0.95, 0.99])
    cfg = get_preset("smoke", epochs=50, eval_every=1, patience=3)
    split = _toy_split()
    model = fit_classifier(split, np.arange(40), split.labels, config=cfg, n_classes=2,
                           in_channels=1, seed=0, validate=validate)
    assert len(calls) == 5
    assert model.training_summary == {"epochs_run": 5, "best_epoch": 2}


def test_classifier_without_patience_trains_every_epoch():
    validate, calls = _scores([0.5, 0.9, 0.8, 0.7, 0.6, 0.5])
    cfg = get_preset("smoke", epochs=6, eval_every=1)
    split = _toy_split()
    fit_classifier(split, np.arange(40), split.labels, config=cfg, n_classes=2, in_channels=1,
                   seed=0, validate=validate)
    assert len(calls) == 6


def test_unet_stops_after_patience_validations_without_improvement():
    validate, calls = _scores([0.3, 0.6, 0.5, 0.4, 0.9])
    preset = seg_preset("smoke", iterations=40, val_every=2, patience=2)
    images = torch.rand(6, 1, 32, 32)
    masks = (images[:, 0] > 0.5).long()
    net = UNet2D(in_channels=1, n_classes=2, channels=preset.channels, dropout=preset.dropout)
    _, log = train_unet(net, images, masks, preset, seed=0, validate=validate)
    # best at step 4 (2nd validation); steps 6 and 8 bring nothing: stop at step 8 of 40
    assert len(calls) == 4 and log.best_iteration == 4 and log.history[-1][0] == 8
