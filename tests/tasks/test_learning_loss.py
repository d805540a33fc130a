"""The loss-prediction module of learning loss (Yoo & Kweon 2019): ranking loss by hand,
shapes, the gradient stop, taps, saving/loading with the model, and that on a tiny problem it
ranks held-out losses."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch.nn import functional as F

from medactive.errors import ConfigError
from medactive.tasks.classification.head import HeadConfig, build_head, fit_head
from medactive.tasks.classification.model import build_classifier
from medactive.tasks.learning_loss import (
    LossPredictionModule,
    RankingTerm,
    attach_from_state,
    attach_loss_module,
    loss_module,
    margin_ranking_loss,
    predicted_loss_provider,
    stop_epoch,
    tap_points,
)
from medactive.tasks.segmentation.unet import UNet2D


def test_ranking_loss_by_hand():
    # pairs (0, 2) and (1, 3): l_0 > l_2 and l̂_0 - l̂_2 = 3 > margin 1 -> 0;
    # l_1 < l_3, so s = -1: max(0, 1 + (0.2 - 0.5)) = 0.7; mean over the two pairs 0.35
    pred = torch.tensor([4.0, 0.2, 1.0, 0.5])
    true = torch.tensor([2.0, 0.1, 1.0, 0.3])
    assert margin_ranking_loss(pred, true).item() == pytest.approx(0.35)
    # the zero case: both pairs ranked right by more than the margin
    assert margin_ranking_loss(torch.tensor([3.0, 0.0, 1.0, 2.0]), true).item() == 0.0
    # equal true losses count as s = -1 (the paper's indicator): max(0, 1 + (2 - 0)) = 3
    assert margin_ranking_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])).item() == 3.0
    # odd batch: the last sample is left out; one sample: 0
    assert margin_ranking_loss(torch.tensor([0.0, 0.5, 9.0]),
                               torch.tensor([1.0, 0.0, 5.0])).item() == pytest.approx(1.5)
    assert margin_ranking_loss(torch.tensor([1.0]), torch.tensor([1.0])).item() == 0.0


def test_module_shape_and_taps_of_each_model_kind():
    cnn = build_classifier("smallcnn", in_channels=1, n_classes=3, width=4)
    assert tap_points(cnn) == [(f"backbone.body.{i}", "output") for i in (2, 6, 10, 14)]
    resnet = build_classifier("resnet18", in_channels=1, n_classes=3, width=4)
    assert [n for n, _ in tap_points(resnet)] == [f"backbone.net.layer{k}" for k in range(1, 5)]
    assert tap_points(build_head(HeadConfig(), 6, 2, seed=0)) == [("backbone", "input")]
    assert tap_points(build_head(HeadConfig(kind="mlp", hidden=5), 6, 2, seed=0)) == [
        ("backbone", "input"), ("backbone", "output")]
    module = attach_loss_module(cnn, torch.zeros(2, 1, 28, 28), seed=0)
    assert [b.in_features for b in module.branches] == [4, 8, 16, 32]
    assert [b.out_features for b in module.branches] == [128] * 4
    assert module([torch.zeros(5, c, 3, 3) for c in (4, 8, 16, 32)]).shape == (5,)
    assert cnn.training  # the probe pass left the mode alone


def test_gradient_into_the_backbone_stops_after_the_stop_epoch():
    assert stop_epoch(200) == 120 and stop_epoch(2) == 1 and stop_epoch(40) == 24
    torch.manual_seed(0)
    model = build_classifier("smallcnn", in_channels=1, n_classes=2, width=4)
    x, y = torch.randn(6, 1, 28, 28), torch.tensor([0, 1, 0, 1, 1, 0])
    attach_loss_module(model, x[:2], seed=0)
    conv = model.backbone.body[0].weight
    for detach, moves in ((False, True), (True, False)):
        model.zero_grad()
        term = RankingTerm.start(model, detach=detach)
        model(x)
        term.finish(y).backward()  # the ranking term alone
        assert bool(conv.grad is not None and conv.grad.abs().sum() > 0) is moves
        assert float(model.loss_module.out.weight.grad.abs().sum()) > 0  # always learns
    assert not model.backbone.body[2]._forward_hooks  # hooks are gone after the step


def test_module_is_saved_and_loaded_with_the_model_and_plain_states_still_load():
    model = build_classifier("smallcnn", in_channels=1, n_classes=2, width=4)
    plain = copy.deepcopy(model.state_dict())
    attach_loss_module(model, torch.zeros(2, 1, 28, 28), seed=0)
    state = model.state_dict()
    assert any(k.startswith("loss_module.") for k in state)
    fresh = build_classifier("smallcnn", in_channels=1, n_classes=2, width=4)
    attach_from_state(fresh, state)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.loss_module.out.weight, model.loss_module.out.weight)
    other = build_classifier("smallcnn", in_channels=1, n_classes=2, width=4)
    attach_from_state(other, plain)
    other.load_state_dict(plain)
    assert loss_module(other) is None


def test_provider_refuses_a_model_without_a_module_in_one_line():
    head = build_head(HeadConfig(), 2, 2, seed=0)
    provide = predicted_loss_provider(head, features=np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(ConfigError, match="learning_loss needs --learning-loss"):
        provide(np.arange(3))


def _problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping Gaussian classes in 4-D: points near the boundary have high loss."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    x[:, 0] += np.where(y == 1, 1.0, -1.0)
    return x, y


def _fit(seed: int):
    x, y = _problem(400, 0)
    return fit_head(x, y, n_classes=2, seed=seed, learning_loss=True,
                    config=HeadConfig(kind="mlp", hidden=16, steps=600, batch_size=64,
                                      dropout=0.0, lr=1e-2))


def test_predicted_loss_ranks_held_out_losses_and_repeats_per_seed():
    head = _fit(0)
    x, y = _problem(500, 1)  # held out
    predicted = predicted_loss_provider(head, features=x)(np.arange(len(x)))
    with torch.no_grad():
        true = F.cross_entropy(head(torch.from_numpy(x)), torch.from_numpy(y),
                               reduction="none").numpy()
    rho = spearmanr(predicted, true).statistic
    assert rho > 0.5, rho  # about 0.85 for seeds 0-2
    again = predicted_loss_provider(_fit(0), features=x)(np.arange(len(x)))
    np.testing.assert_array_equal(predicted, again)
    assert not np.array_equal(predicted, predicted_loss_provider(_fit(1), features=x)(
        np.arange(len(x))))


def test_training_without_the_option_is_unchanged():
    x, y = _problem(64, 0)
    cfg = HeadConfig(steps=20, dropout=0.0)
    a = fit_head(x, y, n_classes=2, config=cfg, seed=3)
    b = fit_head(x, y, n_classes=2, config=cfg, seed=3)
    assert loss_module(a) is None
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert isinstance(loss_module(fit_head(x, y, n_classes=2, config=cfg, seed=3,
                                           learning_loss=True)), LossPredictionModule)


def test_unet_taps_every_level_and_ranks_per_image_pixel_losses():
    torch.manual_seed(0)
    net = UNet2D(1, 3, channels=(4, 8, 16, 32, 64), dropout=0.0)
    assert tap_points(net) == [(f"down.{i}", "output") for i in range(5)] + [
        (f"up.{i}", "output") for i in range(4)]
    x = torch.randn(4, 1, 32, 32)
    module = attach_loss_module(net, x[:2], seed=0)
    assert [b.in_features for b in module.branches] == [4, 8, 16, 32, 64, 32, 16, 8, 4]
    y = torch.randint(0, 3, (4, 32, 32))
    y[1] = -1  # an image with no labelled pixel has true loss 0
    term = RankingTerm.start(net, detach=False)
    logits = net(x)
    got = term.finish(y, ignore_index=-1)
    # by hand: mean pixel CE over labelled pixels per image, then the pairs (0, 2), (1, 3)
    pixel = F.cross_entropy(logits, y.clamp(min=0), reduction="none")
    true = torch.stack([pixel[i].mean() for i in range(4)]).detach()
    true[1] = 0.0
    with torch.no_grad():
        predicted = net.loss_module([f.detach() for f in _features(net, x)])
    assert got.item() == pytest.approx(margin_ranking_loss(predicted, true).item(), rel=1e-5)
    assert predicted_loss_provider(net, features=x)(np.arange(4)).shape == (4,)


def _features(net, x):
    from medactive.tasks.learning_loss import FeatureTaps

    with FeatureTaps(net, tap_points(net)) as taps:
        net(x)
        return taps.features
