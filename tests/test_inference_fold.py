"""Faster pool inference (issue 16, part 5), the same outputs up to float rounding.

The classifier's scoring passes (probabilities, embeddings, the MC head's backbone) run on a
copy whose eval-mode batch norms are folded into the preceding convolution; the U-Net's
probabilities and embeddings on a channels-last copy. MC-dropout stacks keep their
per-sample masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medactive.data.pool import Dataset, Split
from medactive.inference import fold_batch_norm
from medactive.tasks.classification import ClassificationTask, get_preset
from medactive.tasks.classification.model import build_classifier, mc_row_seeds
from medactive.tasks.classification.train import predict, predict_mc
from medactive.tasks.segmentation.predictions import SegmentationPredictions, per_sample_dropout
from medactive.tasks.segmentation.unet import UNet2D

#: float32 rounding of the folded weights; the outputs are probabilities and features of O(1)
ATOL = 1e-5


def _conv_bn(between: nn.Module | None = None) -> nn.Sequential:
    """1x1 conv (weight 2, no bias) -> [between] -> BN (mean 1, var 4, eps 0, gamma 3, beta
    0.5): y = 3 (2x - 1) / 2 + 0.5 = 3x - 1."""
    conv = nn.Conv2d(1, 1, 1, bias=False)
    bn = nn.BatchNorm2d(1, eps=0.0)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(4.0)
        bn.weight.fill_(3.0)
        bn.bias.fill_(0.5)
    layers = [conv] + ([between] if between is not None else []) + [bn]
    return nn.Sequential(*layers)


def _norms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_fold_by_hand_and_the_original_is_left_alone():
    net = _conv_bn().train()
    folded = fold_batch_norm(net)
    x = torch.tensor([1.0, 2.0]).reshape(2, 1, 1, 1)
    assert folded(x).flatten().tolist() == pytest.approx([2.0, 5.0])
    assert _norms(folded) == [] and not folded.training
    assert float(folded[0].weight.detach()) == pytest.approx(3.0)
    assert float(folded[0].bias.detach()) == pytest.approx(-1.0)
    assert len(_norms(net)) == 1 and net.training  # the model itself is untouched
    assert float(net[0].weight.detach()) == 2.0


def test_fold_skips_eval_dropout_but_not_a_nonlinearity():
    through_dropout = fold_batch_norm(_conv_bn(nn.Dropout2d(0.5)))
    assert _norms(through_dropout) == []
    x = torch.tensor([1.0, 2.0]).reshape(2, 1, 1, 1)
    assert through_dropout(x).flatten().tolist() == pytest.approx([2.0, 5.0])
    behind_relu = fold_batch_norm(_conv_bn(nn.ReLU()))
    assert len(_norms(behind_relu)) == 1  # conv -> ReLU -> BN is not affine: kept


def _random_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norms with non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in _norms(model):
            n = bn.num_features
            bn.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            bn.running_var.copy_(0.5 + torch.rand(n, generator=gen))
            bn.weight.copy_(0.5 + torch.rand(n, generator=gen))
            bn.bias.copy_(torch.rand(n, generator=gen) - 0.5)
    return model.eval()


def _count_calls(modules: list[nn.Module]) -> list[int]:
    calls = [0]
    for m in modules:
        m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def _classifier_and_split(n: int = 13):
    torch.manual_seed(0)
    model = _random_statistics(build_classifier("smallcnn", in_channels=3, n_classes=4, width=4,
                                                dropout=0.5))
    images = np.random.default_rng(0).integers(0, 256, (n, 16, 16, 3)).astype(np.uint8)
    return model, Split(np.array([f"s{i}" for i in range(n)]), images)


def _reference_inputs(split: Split) -> torch.Tensor:
    x = torch.from_numpy(split.images).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.5


def test_classifier_pool_pass_skips_batch_norm_and_keeps_its_outputs():
    model, split = _classifier_and_split()
    idx = np.array([7, 0, 12, 3, 5, 1, 9])
    calls = _count_calls(_norms(model))
    probas, feats = predict(model, split, idx, image_size=None, batch_size=4,
                            with_features=True, fold_norms=True)
    assert calls[0] == 0  # the folded copy ran, not the model's batch norms
    with torch.no_grad():
        h = model.features(_reference_inputs(split)[idx])
        want = torch.softmax(model.fc(h), dim=1).double().numpy()
    assert calls[0] > 0
    np.testing.assert_allclose(probas, want, rtol=0, atol=ATOL)
    np.testing.assert_allclose(feats, h.numpy(), rtol=0, atol=ATOL)
    assert not model.training


def test_classifier_mc_stacks_keep_their_per_sample_masks():
    model, split = _classifier_and_split()
    idx = np.array([7, 0, 12, 3, 5, 1, 9])
    got = predict_mc(model, split, idx, n_samples=6, seed=4, image_size=None, batch_size=3,
                     fold_norms=True)
    with torch.no_grad():
        h = model.features(_reference_inputs(split)[idx])
        want = model.mc_head(h, 6, row_seeds=mc_row_seeds(4, idx)).double().numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    # the same mask pattern: the zeroed logit directions match pass for pass
    assert np.array_equal(np.argmax(got, axis=1), np.argmax(want, axis=1))
    assert not np.allclose(got[..., 0], got[..., 1])  # dropout is still on


def test_task_scores_the_pool_folded_and_evaluates_the_exact_network():
    """Pool scoring (probabilities, embeddings, MC passes) takes the folded copy; evaluation
    keeps the network as trained, so that the metrics a run reports stay bit-for-bit."""
    rng = np.random.default_rng(0)

    def split(prefix, m):
        return Split(np.array([f"{prefix}{i}" for i in range(m)]),
                     rng.integers(0, 255, (m, 8, 8, 1), dtype=np.uint8), rng.integers(0, 2, m))

    task = ClassificationTask(Dataset("toy", ["a", "b"], split("t", 12), split("v", 4),
                                      split("s", 4), in_channels=1), get_preset("smoke"))
    torch.manual_seed(0)
    model = _random_statistics(build_classifier("smallcnn", in_channels=1, n_classes=2, width=4,
                                                dropout=0.5))
    calls = _count_calls(_norms(model))
    preds = task.predictions(model, seed=0)
    for field in ("probas", "embeddings", "mc_probas"):
        preds.get(field, np.arange(12))
    assert calls[0] == 0
    task.evaluate(model, "test")
    assert calls[0] > 0


@pytest.fixture
def unet_and_images():
    torch.manual_seed(0)
    net = _random_statistics(UNet2D(1, 3, channels=(4, 8, 16, 32, 64), dropout=0.2))
    return net, torch.rand(7, 1, 32, 32)


def test_fold_reaches_the_norms_inside_monai_blocks(unet_and_images):
    net, images = unet_and_images
    folded = fold_batch_norm(net)
    assert _norms(folded) == []
    with torch.no_grad():
        np.testing.assert_allclose(folded(images).numpy(), net(images).numpy(), rtol=0,
                                   atol=ATOL)


def test_unet_probabilities_and_embeddings_run_channels_last(unet_and_images):
    """The deterministic passes run on a channels-last copy (faster on CPU); the network
    itself is left contiguous, and the outputs are its own up to float rounding."""
    net, images = unet_and_images
    preds = SegmentationPredictions(net, images, seed=1, batch_size=3, n_mc_samples=4)
    seen = []  # 3x3 convolutions over several channels: channels-last weights?
    for conv in net.modules():
        if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.in_channels > 1:
            conv.register_forward_hook(lambda m, *_: seen.append(
                m.weight.is_contiguous(memory_format=torch.channels_last)
                and not m.weight.is_contiguous()))
    idx = np.array([5, 0, 3, 6, 1])
    probas = preds.get("probas", idx)
    emb = preds.get("embeddings", idx)
    assert seen and all(seen)
    assert all(p.is_contiguous() for p in net.parameters())
    with torch.no_grad():
        logits, _, bottleneck = net.features(images[idx])
    np.testing.assert_allclose(probas, torch.softmax(logits, dim=1).numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(emb, bottleneck.mean(dim=(2, 3)).numpy(), rtol=0, atol=ATOL)
    assert probas.flags.c_contiguous


def test_unet_mc_stacks_are_unchanged(unet_and_images):
    """The MC passes keep the network itself: dropout sits between each convolution and its
    batch norm, so its per-sample masks act before the norm, exactly as before."""
    from medactive._random import derive_seed

    net, images = unet_and_images
    idx = np.array([5, 0, 3, 6, 1])
    got = SegmentationPredictions(net, images, seed=1, batch_size=5, n_mc_samples=3
                                  ).get("mc_probas", idx)
    with torch.no_grad(), per_sample_dropout(net, [derive_seed(1, "mc", int(i)) for i in idx]):
        want = np.stack([torch.softmax(net(images[idx]), dim=1).numpy() for _ in range(3)],
                        axis=-1)
    np.testing.assert_array_equal(got, want)
