from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.data.pool import Split
from medactive.tasks.classification import get_preset
from medactive.tasks.classification.augment import augment_batch
from medactive.tasks.classification.train import fit_classifier, predict, predict_mc


def _toy_split(n=40, seed=0):
    """Bright-left vs bright-right 8x8 images: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 60, (n, 8, 8, 1)).astype(np.uint8)
    for i, y in enumerate(labels):
        images[i, :, (4 if y else 0):(8 if y else 4)] += 180
    return Split(np.array([f"t{i}" for i in range(n)]), images, labels)


def _fit(split, seed, **kw):
    cfg = get_preset("smoke", epochs=kw.pop("epochs", 3), **kw)
    idx = np.arange(len(split))
    return fit_classifier(split, idx, split.labels, config=cfg, n_classes=2, in_channels=1,
                          seed=seed)


def test_same_seed_same_model():
    split = _toy_split()
    a, b = _fit(split, 7), _fit(split, 7)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    c = _fit(split, 8)
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_learns_toy_problem():
    split = _toy_split(64)
    model = _fit(split, 0, epochs=15, lr=0.01)
    probas, feats = predict(model, split, np.arange(64), image_size=None, with_features=True)
    assert probas.shape == (64, 2) and feats.shape[0] == 64
    assert (probas.argmax(1) == split.labels).mean() >= 0.85


def test_best_validation_checkpoint_is_kept():
    split = _toy_split()
    scores = iter([0.9, 0.1, 0.2])
    snapshots = []

    def validate(model):
        snapshots.append(model.fc.weight.detach().clone())
        return next(scores)

    cfg = get_preset("smoke", epochs=3, eval_every=1)
    model = fit_classifier(split, np.arange(40), split.labels, config=cfg, n_classes=2,
                           in_channels=1, seed=0, validate=validate)
    assert torch.equal(model.fc.weight, snapshots[0])


def test_predict_mc_shape_and_seed():
    split = _toy_split(10)
    model = _fit(split, 0, epochs=1)
    a = predict_mc(model, split, np.arange(10), n_samples=4, seed=3, image_size=None)
    b = predict_mc(model, split, np.arange(10), n_samples=4, seed=3, image_size=None)
    assert a.shape == (10, 2, 4) and np.array_equal(a, b)


@pytest.mark.parametrize("kind", ["none", "flip", "isic"])
def test_augmentations_keep_shape_and_range(kind):
    x = torch.rand(5, 3, 16, 16)
    y = augment_batch(x, kind, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1


def test_flip_is_a_flip():
    x = torch.arange(4.0).reshape(1, 1, 1, 4).repeat(64, 1, 1, 1)
    y = augment_batch(x, "flip", torch.Generator().manual_seed(0))
    flipped = (y[:, 0, 0, 0] == 3).sum()
    assert 0 < flipped < 64 and torch.all((y[:, 0, 0] == x[0, 0, 0]).all(-1) | (y[:, 0, 0] == x[0, 0, 0].flip(-1)).all(-1))


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [1, 3, 16])
def test_predict_mc_is_the_same_however_the_pool_is_chunked(chunk):
    """Each sample's dropout masks come from (seed, its pool index), not from the blocking: the
    pool's request blocks (separate calls) and the inference batches give the same stack."""
    split = _toy_split(20)
    model = _fit(split, 0, epochs=1, dropout=0.5)
    idx = np.array([4, 17, 0, 9, 12, 3, 19, 1, 8, 15, 6, 11, 2, 18, 7, 14, 10, 5, 13, 16])
    whole = predict_mc(model, split, idx, n_samples=3, seed=5, image_size=None)
    blocks = np.concatenate([
        predict_mc(model, split, idx[s:s + chunk], n_samples=3, seed=5, image_size=None,
                   batch_size=2) for s in range(0, idx.size, chunk)])
    np.testing.assert_allclose(blocks, whole, rtol=0, atol=1e-6)
    other_round = predict_mc(model, split, idx, n_samples=3, seed=6, image_size=None)
    assert not np.allclose(other_round, whole)  # the round's seed still changes the masks
