from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss

from medactive.scoring import bald, entropy
from medactive.tasks.segmentation.predictions import (
    SegmentationPredictions,
    dice_ce_per_sample,
    reduce_pixels,
)
from medactive.tasks.segmentation.unet import UNet2D


@pytest.fixture(scope="module")
def net_and_images():
    torch.manual_seed(0)
    net = UNet2D(1, 3, channels=(4, 8, 16, 32, 64), dropout=0.2).eval()
    images = torch.rand(7, 1, 32, 32)
    return net, images


def _preds(net, images, **kw):
    kw.setdefault("batch_size", 3)
    kw.setdefault("n_mc_samples", 4)
    return SegmentationPredictions(net, images, seed=1, **kw)


def test_reduce_pixels_by_hand():
    s = np.array([[[0.0, 1.0], [0.0, 3.0]], [[2.0, 2.0], [2.0, 2.0]]])
    np.testing.assert_allclose(reduce_pixels(s, "mean"), [1.0, 2.0])
    np.testing.assert_allclose(reduce_pixels(s, "max"), [3.0, 2.0])
    w = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    np.testing.assert_allclose(reduce_pixels(s, "foreground", w), [1.5, 0.0])


def test_score_streams_the_same_as_the_full_stack(net_and_images):
    net, images = net_and_images
    idx = np.array([5, 0, 3, 6, 1])
    preds = _preds(net, images)
    probas = preds.get("probas", idx)
    assert probas.shape == (5, 3, 32, 32)
    np.testing.assert_allclose(preds.score(entropy, "probas", idx),
                               entropy(probas).mean(axis=(1, 2)), rtol=1e-6)
    fg = _preds(net, images, reduction="foreground").score(entropy, "probas", idx)
    w = 1.0 - probas[:, 0]
    np.testing.assert_allclose(fg, (entropy(probas) * w).sum(axis=(1, 2)) / w.sum(axis=(1, 2)),
                               rtol=1e-6)
    mx = _preds(net, images, reduction="max").score(entropy, "probas", idx)
    np.testing.assert_allclose(mx, entropy(probas).max(axis=(1, 2)), rtol=1e-6)


def test_mc_probas_are_seeded_and_streamed(net_and_images):
    net, images = net_and_images
    idx = np.arange(7)
    preds = _preds(net, images)
    mc = preds.get("mc_probas", idx)
    assert mc.shape == (7, 3, 32, 32, 4)
    np.testing.assert_allclose(mc.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(mc[..., 0], mc[..., 1])  # dropout is active
    np.testing.assert_array_equal(mc, _preds(net, images).get("mc_probas", idx))
    np.testing.assert_allclose(preds.score(bald, "mc_probas", idx),
                               bald(mc).mean(axis=(1, 2)), rtol=1e-6)
    preds.n_mc_samples = 2  # a strategy may ask for fewer passes
    assert preds.get("mc_probas", idx[:2]).shape[-1] == 2
    assert not net.training


def test_embeddings_are_pooled_bottleneck_features(net_and_images):
    net, images = net_and_images
    preds = _preds(net, images)
    emb = preds.get("embeddings", np.array([4, 2, 4]))
    assert emb.shape == (3, 64)
    np.testing.assert_array_equal(emb[0], emb[2])
    with torch.no_grad():
        _, _, bottleneck = net.features(images[[2]])
    np.testing.assert_allclose(emb[1], bottleneck.mean(dim=(2, 3))[0].numpy(), rtol=1e-5,
                               atol=1e-6)
    assert preds.get("embeddings", np.array([], dtype=np.int64)).shape == (0, 64)


def test_per_sample_loss_equals_monai_dice_ce(net_and_images):
    net, images = net_and_images
    with torch.no_grad():
        logits = net(images[:3])
    target = logits.argmax(dim=1)
    ours = dice_ce_per_sample(logits, target)
    monai = DiceCELoss(to_onehot_y=True, softmax=True)
    for i in range(3):
        assert float(ours[i]) == pytest.approx(float(monai(logits[i:i + 1],
                                                           target[i:i + 1, None])), rel=1e-5)


def test_gradient_embedding_is_the_head_weight_gradient(net_and_images):
    net, images = net_and_images
    idx = np.array([6, 2, 4, 0])
    grads = _preds(net, images).gradient_embeddings_array(idx)
    assert grads.shape == (4, 3 * 4)  # c x d, d = channels[0]
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    for row, i in enumerate(idx):
        net.zero_grad()
        logits = net(images[[i]])
        loss = loss_fn(logits, logits.detach().argmax(dim=1, keepdim=True))
        loss.backward()
        expected = net.head.weight.grad.reshape(-1).numpy()
        np.testing.assert_allclose(grads[row], expected, rtol=1e-4, atol=1e-7)
    net.zero_grad()


def test_gradient_embedding_returns_dense_embedding(net_and_images):
    embedding = pytest.importorskip("medactive.selection.embedding")
    net, images = net_and_images
    emb = _preds(net, images).gradient_embedding(np.arange(5))
    assert isinstance(emb, embedding.DenseEmbedding) and emb.to_dense().shape == (5, 12)


def test_unknown_field_and_reduction(net_and_images):
    from medactive.errors import ConfigError

    net, images = net_and_images
    with pytest.raises(KeyError, match="unknown"):
        _preds(net, images).get("logits", np.arange(2))
    with pytest.raises(ConfigError, match="reduction"):
        _preds(net, images, reduction="median")


def test_pool_scoring_reports_progress_when_asked(net_and_images, capsys):
    # 7 slices in batches of 3: a plain line (stderr is not a terminal) ending at 7/7
    net, images = net_and_images
    quiet = _preds(net, images).score(entropy, "probas", np.arange(7))
    assert capsys.readouterr().err == ""
    loud = _preds(net, images, progress=True).score(entropy, "probas", np.arange(7))
    err = capsys.readouterr().err
    assert "scoring 7 slices (predictions)" in err and "7/7" in err and "\r" not in err
    np.testing.assert_array_equal(quiet, loud)


@pytest.mark.parametrize("chunk", [1, 3, 16])
def test_mc_probas_are_the_same_however_the_pool_is_chunked(net_and_images, chunk):
    """Each slice's channel-dropout masks come from (seed, its pool index): requests in blocks
    and any inference batch size give the stack of one request."""
    net, images = net_and_images
    idx = np.array([6, 2, 0, 5, 3, 1, 4])
    whole = _preds(net, images, batch_size=7).get("mc_probas", idx)
    preds = _preds(net, images, batch_size=2)
    blocks = np.concatenate([preds.get("mc_probas", idx[s:s + chunk])
                             for s in range(0, idx.size, chunk)])
    np.testing.assert_allclose(blocks, whole, rtol=0, atol=1e-5)
    other = SegmentationPredictions(net, images, seed=2, batch_size=7, n_mc_samples=4)
    assert not np.allclose(other.get("mc_probas", idx), whole)
