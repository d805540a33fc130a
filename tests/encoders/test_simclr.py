"""SimCLR pretraining: NT-Xent by hand, augmentation contract, a tiny pretraining, weight loading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medactive.data.pool import Split
from medactive.encoders.simclr import (
    SSLConfig,
    backbone_embeddings,
    nt_xent_loss,
    pretrain_simclr,
    simclr_augment,
)
from medactive.errors import ConfigError
from medactive.tasks.classification import get_preset
from medactive.tasks.classification.model import build_classifier
from medactive.tasks.classification.train import fit_classifier

E1, E2 = [1.0, 0.0], [0.0, 1.0]


def test_nt_xent_two_pairs_by_hand():
    # views u = [e1, e2, e1, e2]: view 0's partner (view 2) has cosine 1, the two others 0, so
    # its loss is -log(e^{1/t} / (e^{1/t} + 2)) = log(1 + 2 e^{-1/t}); the four views agree
    same = torch.tensor([E1, E2])
    assert nt_xent_loss(same, same, 0.5).item() == pytest.approx(math.log(1 + 2 * math.exp(-2)))
    assert nt_xent_loss(same, same, 1.0).item() == pytest.approx(math.log(1 + 2 * math.exp(-1)))
    # swapped partners u = [e1, e2, e2, e1]: view 0's partner is orthogonal (s = 0) and the
    # negative view 3 is identical (s = 2): -log(1 / (1 + 1 + e^2)) = log(2 + e^2)
    swapped = torch.tensor([E2, E1])
    assert nt_xent_loss(same, swapped, 0.5).item() == pytest.approx(math.log(2 + math.exp(2)))
    # scale does not matter: rows are normalised
    assert nt_xent_loss(3 * same, same, 0.5).item() == pytest.approx(
        math.log(1 + 2 * math.exp(-2)))


def test_nt_xent_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="z1 and z2"):
        nt_xent_loss(torch.zeros(2, 3), torch.zeros(3, 3))


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (5, 3, 28, 28), (3, 3, 64, 48)])
def test_augment_keeps_shape_dtype_range_and_differs(shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(0)
    a, b = simclr_augment(x, gen), simclr_augment(x, gen)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert not torch.allclose(a, b)
    assert not torch.allclose(a, x)
    again = simclr_augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, again)  # seeded


def _two_kinds(n=64, seed=0):
    """``n`` 28 px grey images: even rows smooth bright blobs, odd rows fine checkerboards."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    images, kinds = [], []
    for i in range(n):
        if i % 2 == 0:
            cy, cx = rng.uniform(10, 18, 2)
            img = 200 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 60.0)
        else:
            img = 255.0 * ((yy // 2 + xx // 2) % 2) * rng.uniform(0.6, 1.0)
        img = img + rng.normal(0, 8, img.shape)
        images.append(np.clip(img, 0, 255).astype(np.uint8)[:, :, None])
        kinds.append(i % 2)
    return Split(np.array([f"x{i}" for i in range(n)]), np.stack(images)), np.array(kinds)


def test_tiny_pretraining_lowers_loss_and_groups_kinds():
    split, kinds = _two_kinds()
    losses: list[float] = []
    config = SSLConfig(epochs=3, batch_size=16, lr=3e-3)
    state = pretrain_simclr(split, config=config, model="smallcnn", in_channels=1, width=8,
                            seed=0, on_epoch=lambda epoch, loss: losses.append(loss))
    assert len(losses) == 3 and losses[-1] < losses[0]
    emb = backbone_embeddings(state, split, model="smallcnn", in_channels=1, width=8)
    assert emb.shape == (64, 64)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    same = kinds[:, None] == kinds[None]
    off_diagonal = ~np.eye(64, dtype=bool)
    assert dist[same & off_diagonal].mean() < dist[~same].mean()
    # seeded: the same seed gives the same weights
    again = pretrain_simclr(split, config=config, model="smallcnn", in_channels=1, width=8,
                            seed=0)
    assert all(torch.equal(state[k], again[k]) for k in state)


def test_pretrained_state_loads_into_backbone_and_head_stays_random():
    split, kinds = _two_kinds(n=16)
    state = pretrain_simclr(split, config=SSLConfig(epochs=1, batch_size=8), model="smallcnn",
                            in_channels=1, width=8, seed=3)
    clf = build_classifier("smallcnn", in_channels=1, n_classes=2, width=8)
    assert set(state) == set(clf.backbone.state_dict())
    clf.backbone.load_state_dict(state)  # strict: every key matches
    # lr 0: the weights after "training" are the initial ones
    cfg = get_preset("smoke", epochs=1).replace(lr=0.0, weight_decay=0.0)
    idx = np.arange(16)
    common = {"config": cfg, "n_classes": 2, "in_channels": 1, "seed": 5}
    pre = fit_classifier(split, idx, kinds, init_backbone=state, **common)
    plain = fit_classifier(split, idx, kinds, **common)
    for name, value in state.items():
        if "running" not in name and "num_batches" not in name:  # BN statistics update
            assert torch.equal(pre.backbone.state_dict()[name], value), name
    assert torch.equal(pre.fc.weight, plain.fc.weight)  # the head is not pretrained
    assert not torch.equal(pre.backbone.body[0].weight, plain.backbone.body[0].weight)


def test_config_validation():
    assert SSLConfig.from_dict({"epochs": 2}).epochs == 2
    assert SSLConfig.from_dict(None) == SSLConfig()
    for bad, match in (({"method": "byol"}, "unknown method"), ({"epochs": 0}, "epochs"),
                       ({"temperature": 0}, "temperature"), ({"what": 1}, "unknown key"),
                       ({"batch_size": 1}, "batch_size")):
        with pytest.raises(ConfigError, match=match):
            SSLConfig.from_dict(bad)
