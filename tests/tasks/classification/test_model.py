from __future__ import annotations

import pytest
import torch

from medactive.errors import ConfigError
from medactive.tasks.classification.model import build_classifier


@pytest.mark.parametrize("name,channels", [("smallcnn", 1), ("resnet18", 3)])
def test_shapes_and_penultimate_hook(name, channels):
    model = build_classifier(name, in_channels=channels, n_classes=4, width=8, dropout=0.5)
    x = torch.randn(3, channels, 28, 28)
    model.eval()
    h = model.features(x)
    assert h.shape == (3, model.fc.in_features)
    assert torch.allclose(model(x), model.fc(h))


def test_mc_head_samples_differ_and_sum_to_one():
    torch.manual_seed(0)
    model = build_classifier("smallcnn", in_channels=1, n_classes=3, width=4, dropout=0.5).eval()
    h = model.features(torch.randn(2, 1, 16, 16))
    mc = model.mc_head(h, 6, torch.Generator().manual_seed(0))
    assert mc.shape == (2, 3, 6)
    assert torch.allclose(mc.sum(1), torch.ones(2, 6))
    assert not torch.allclose(mc[..., 0], mc[..., 1])
    again = model.mc_head(h, 6, torch.Generator().manual_seed(0))
    assert torch.equal(mc, again)


def test_without_dropout_mc_passes_agree():
    model = build_classifier("smallcnn", in_channels=1, n_classes=3, width=4, dropout=0.0).eval()
    mc = model.mc_head(model.features(torch.randn(2, 1, 16, 16)), 3)
    assert torch.allclose(mc[..., 0], mc[..., 2])


def test_unknown_model():
    with pytest.raises(ConfigError, match="unknown model"):
        build_classifier("vgg", in_channels=1, n_classes=2)
