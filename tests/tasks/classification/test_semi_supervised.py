from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medactive.data.pool import Split
from medactive.errors import ConfigError
from medactive.tasks.classification import get_preset
from medactive.tasks.classification import train as classification
from medactive.tasks.classification.semi_supervised import (
    FixMatchConfig,
    feature_strong,
    feature_weak,
    fixmatch_unlabeled_loss,
    semi_supervised_config,
    strong_augment,
    weak_augment,
)
from medactive.tasks.classification.train import fit_classifier

# ----------------------------------------------------------------------------- the loss


def test_loss_by_hand():
    # row 0: p = e^4 / (e^4 + 2) = 0.965 >= 0.95, target 0; row 1: e / (e + 2) = 0.576, out;
    # row 2: e^5 / (e^5 + 2) = 0.987, target 2
    weak = torch.tensor([[4.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    strong = torch.tensor([[0.0, 0.0, 0.0], [9.0, -3.0, 2.0], [1.0, 2.0, 3.0]])
    loss, mask = fixmatch_unlabeled_loss(weak, strong, threshold=0.95)
    assert mask.tolist() == [True, False, True]
    # CE([0,0,0], 0) = log 3; CE([1,2,3], 2) = log(1 + e^-1 + e^-2); mean over all 3 rows
    expected = (math.log(3) + math.log(1 + math.exp(-1) + math.exp(-2))) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_below_threshold_contributes_exactly_zero():
    weak = torch.tensor([[1.0, 0.0], [0.0, 0.5]])   # max p = 0.73, 0.62
    strong = torch.tensor([[-50.0, 50.0], [3.0, -7.0]], requires_grad=True)
    loss, mask = fixmatch_unlabeled_loss(weak, strong, threshold=0.95)
    assert mask.tolist() == [False, False]
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(strong.grad, torch.zeros_like(strong))


def test_masked_row_with_infinite_ce_stays_zero():
    weak = torch.tensor([[10.0, 0.0], [0.2, 0.0]])           # row 1 masked, target 0
    strong = torch.tensor([[10.0, 0.0], [-math.inf, 0.0]], requires_grad=True)
    loss, mask = fixmatch_unlabeled_loss(weak, strong, threshold=0.95)
    assert mask.tolist() == [True, False] and math.isfinite(loss.item())
    loss.backward()
    assert torch.equal(strong.grad[1], torch.zeros(2))


def test_threshold_is_inclusive_and_targets_are_detached():
    weak = torch.zeros(2, 2, requires_grad=True)              # p = 0.5 exactly
    strong = torch.tensor([[0.0, 0.0], [0.0, 0.0]], requires_grad=True)
    loss, mask = fixmatch_unlabeled_loss(weak, strong, threshold=0.5)
    assert mask.tolist() == [True, True]
    assert loss.item() == pytest.approx(math.log(2))
    loss.backward()
    assert weak.grad is None and strong.grad is not None


def test_empty_batch_and_bad_input():
    loss, mask = fixmatch_unlabeled_loss(torch.zeros(0, 3), torch.zeros(0, 3), 0.95)
    assert loss.item() == 0.0 and mask.shape == (0,)
    with pytest.raises(ValueError):
        fixmatch_unlabeled_loss(torch.zeros(2, 3), torch.zeros(2, 4), 0.95)
    with pytest.raises(ValueError):
        fixmatch_unlabeled_loss(torch.zeros(2, 3), torch.zeros(2, 3), 1.5)


# ----------------------------------------------------------------------------- augmentations


def _images(c, dtype=torch.float32, seed=0):
    return torch.rand(16, c, 28, 28, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("augment", [weak_augment, strong_augment])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_views_keep_shape_dtype_range_and_are_seeded(augment, channels, dtype):
    x = _images(channels, dtype)
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    c = augment(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_weak_view_is_flip_and_shift():
    x = torch.full((4, 1, 8, 8), 0.3)                   # constant: flips and shifts keep it
    assert torch.allclose(weak_augment(x, torch.Generator().manual_seed(0)), x)
    # one bright pixel in a 16 px image: it moves by at most round(0.125 * 16) = 2 pixels
    x = torch.zeros(32, 1, 16, 16)
    x[:, 0, 8, 3] = 1.0
    out = weak_augment(x, torch.Generator().manual_seed(0))
    for img in out[:, 0]:
        rows, cols = torch.nonzero(img == 1.0, as_tuple=True)
        assert len(rows) >= 1
        assert ((rows - 8).abs() <= 2).all()
        assert (((cols - 3).abs() <= 2) | ((cols - 12).abs() <= 2)).all()  # 15 - 3 = 12


def test_strong_without_ops_or_cutout_is_identity_and_cutout_is_a_grey_box():
    x = _images(3)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(strong_augment(x, g, n_ops=0, cutout=0.0), x)
    x = torch.zeros(8, 1, 20, 20)
    out = strong_augment(x, torch.Generator().manual_seed(3), n_ops=0, cutout=0.5)
    changed = out != x
    assert set(out[changed].unique().tolist()) <= {0.5}
    for img in changed[:, 0]:
        rows, cols = torch.nonzero(img, as_tuple=True)
        if len(rows):  # a filled rectangle of side <= 0.5 * 20 (+1 for pixel rounding)
            h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
            assert h * w == len(rows) and h <= 11 and w <= 11


def test_bad_images_raise():
    with pytest.raises(ValueError):
        weak_augment(torch.zeros(2, 28, 28), torch.Generator())
    with pytest.raises(ValueError):
        strong_augment(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.Generator())


def test_feature_views():
    h = torch.randn(200, 50, generator=torch.Generator().manual_seed(0)) + 3.0
    w1 = feature_weak(h, torch.Generator().manual_seed(1))
    w2 = feature_weak(h, torch.Generator().manual_seed(1))
    s = feature_strong(h, torch.Generator().manual_seed(1))
    assert w1.shape == h.shape and w1.dtype == h.dtype and s.shape == h.shape
    assert torch.equal(w1, w2)
    assert not torch.equal(w1, feature_weak(h, torch.Generator().manual_seed(2)))
    # relative noise: ||w - h|| / ||h|| ~ 0.05 (row RMS scaling)
    assert 0.04 < ((w1 - h).norm() / h.norm()).item() < 0.06
    # a fifth of the features dropped, the rest scaled by 1 / 0.8
    assert 0.17 < (s == 0).float().mean().item() < 0.23
    assert (s[s != 0] / h[s != 0]).mean().item() == pytest.approx(1.25, abs=0.05)
    assert feature_weak(h.double(), torch.Generator()).dtype == torch.float64
    with pytest.raises(ValueError):
        feature_strong(h, torch.Generator(), drop=1.0)


# ----------------------------------------------------------------------------- config


def test_config_defaults_are_the_papers():
    cfg = FixMatchConfig()
    assert (cfg.threshold, cfg.lambda_u, cfg.mu, cfg.n_ops, cfg.cutout) == (0.95, 1.0, 7, 2, 0.5)
    assert FixMatchConfig.from_dict(cfg.to_dict()) == cfg
    assert FixMatchConfig.from_dict({"threshold": 0.9, "mu": 3}).mu == 3


@pytest.mark.parametrize("options, key", [
    ({"threshold": 1.5}, "threshold"), ({"threshold": "high"}, "threshold"),
    ({"lambda_u": -1}, "lambda_u"), ({"mu": 0}, "mu"), ({"mu": 2.5}, "mu"),
    ({"mu": True}, "mu"), ({"cutout": 1.5}, "cutout"), ({"n_ops": -1}, "n_ops"),
    ({"steps_per_epoch": 0}, "steps_per_epoch"),
    ({"max_unlabeled_per_epoch": 1}, "max_unlabeled_per_epoch"), ({"tau": 0.9}, "tau"),
])
def test_config_rejects_bad_values(options, key):
    with pytest.raises(ConfigError, match=key) as info:
        FixMatchConfig.from_dict(options, source="semi_options")
    assert str(info.value).startswith("semi_options:")


def test_method_names():
    assert semi_supervised_config(None) is None
    assert semi_supervised_config("fixmatch", {"mu": 2}).mu == 2
    with pytest.raises(ConfigError, match="mixmatch"):
        semi_supervised_config("mixmatch")
    with pytest.raises(ConfigError, match="without"):
        semi_supervised_config(None, {"mu": 2})


# ----------------------------------------------------------------------------- fit_classifier


def _random_split(n=40, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28, 1)).astype(np.uint8)
    return Split(np.array([f"r{i}" for i in range(n)]), images, rng.integers(0, 2, n))


def _fit_semi(split, seed, semi=None, unlabeled=None):
    cfg = get_preset("smoke")  # width-8 smallcnn, 2 epochs
    labeled = np.arange(10)
    labels = split.labels[labeled].copy()
    model = fit_classifier(split, labeled, labels, config=cfg, n_classes=2, in_channels=1,
                           seed=seed, unlabeled_idx=np.arange(10, 40) if unlabeled is None
                           else unlabeled, semi=semi)
    assert np.array_equal(labels, split.labels[labeled])  # pseudo-targets never become labels
    return model


def _same(a, b):
    return all(torch.equal(va, vb) for va, vb in zip(a.state_dict().values(),
                                                     b.state_dict().values()))


def test_fixmatch_fit_is_reproducible_per_seed():
    split = _random_split()
    semi = FixMatchConfig(threshold=0.5)  # a random net passes 0.5: the unlabelled term acts
    a, b, c = (_fit_semi(split, s, semi) for s in (3, 3, 4))
    assert not a.training
    assert _same(a, b)
    assert not _same(a, c)
    supervised = _fit_semi(split, 3, None)
    assert not _same(a, supervised)


def test_fixmatch_without_unlabeled_is_the_supervised_run():
    split = _random_split()
    empty = np.zeros(0, dtype=np.int64)
    assert _same(_fit_semi(split, 5, FixMatchConfig(), unlabeled=empty),
                 _fit_semi(split, 5, None))


def test_unlabeled_batches_follow_mu_steps_and_cap(monkeypatch):
    seen = []
    real = classification.fixmatch_unlabeled_loss

    def spy(weak, strong, threshold):
        seen.append((len(weak), threshold))
        return real(weak, strong, threshold)

    monkeypatch.setattr(classification, "fixmatch_unlabeled_loss", spy)
    split = _random_split()
    # 10 labels, B = 32: mu * min(B, 10) = 20 of the 30 pool images per step, 1 step per epoch
    _fit_semi(split, 0, FixMatchConfig(mu=2, threshold=0.8))
    assert seen == [(20, 0.8)] * 2
    seen.clear()
    # 3 steps per epoch, at most 20 unlabelled per epoch: 20 // 3 = 6 per step; 7 * 10 > 30
    _fit_semi(split, 0, FixMatchConfig(steps_per_epoch=3, max_unlabeled_per_epoch=20))
    assert [s for s, _ in seen] == [6] * 6
    seen.clear()
    _fit_semi(split, 0, FixMatchConfig(steps_per_epoch=2))
    assert [s for s, _ in seen] == [30] * 4  # mu * 10 = 70, capped by the pool of 30


def test_overlapping_unlabeled_is_refused():
    with pytest.raises(ValueError, match="shares"):
        _fit_semi(_random_split(), 0, FixMatchConfig(), unlabeled=np.arange(5, 20))
