from __future__ import annotations

import pytest
import torch
from torch import nn

from medactive.tasks.segmentation.unet import UNet2D, mc_dropout


def test_shapes_and_levels():
    net = UNet2D(1, 4, channels=(4, 8, 16, 32, 64)).eval()
    logits, feats, bottleneck = net.features(torch.zeros(2, 1, 48, 32))
    assert logits.shape == (2, 4, 48, 32)
    assert feats.shape == (2, 4, 48, 32)  # input of the final 1x1 convolution
    assert bottleneck.shape == (2, 64, 3, 2)
    assert len(net.down) == 5 and len(net.up) == 4
    assert net.head.kernel_size == (1, 1) and net.head.weight.shape == (4, 4, 1, 1)


def test_block_order_conv_dropout_bn_leakyrelu():
    net = UNet2D(1, 4, channels=(4, 8, 16, 32, 64), dropout=0.1)
    block = net.down[0][0]
    kinds = [type(m) for m in block.modules() if not list(m.children())]
    assert kinds == [nn.Conv2d, nn.Dropout2d, nn.BatchNorm2d, nn.LeakyReLU]
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout2d)] == [0.1] * 18


def test_size_must_be_multiple_of_16():
    with pytest.raises(ValueError, match="multiple of 16"):
        UNet2D(1, 4, channels=(4, 8, 16, 32, 64))(torch.zeros(1, 1, 40, 32))


def test_mc_dropout_is_stochastic_and_restores_mode():
    torch.manual_seed(0)
    net = UNet2D(1, 3, channels=(4, 8, 16, 32, 64), dropout=0.5)
    net.eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
        with mc_dropout(net):
            assert not any(m.training for m in net.modules() if isinstance(m, nn.BatchNorm2d))
            assert not torch.equal(net(x), net(x))
    assert not net.training
