"""The survey's 2D U-Net (§6.1.5): 5 levels, two blocks per level, conv → dropout → BN → LReLU.

Each block is MONAI's :class:`~monai.networks.blocks.Convolution` (3×3 conv, then
``adn_ordering="DNA"``: dropout → batch norm → leaky ReLU). Dropout is channel-wise
(``Dropout2d``, ``dropout_dim=2``) so MC-dropout passes drop whole feature maps. The encoder
halves the resolution four times (max pooling); the decoder up-samples with a 2×2 transposed
convolution, concatenates the skip connection and applies two blocks; a 1×1 convolution
(:attr:`UNet2D.head`) gives the class logits. Input sides must be multiples of 16.

References:
    Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    MICCAI 2015. Luo et al., SSL4MIS (github.com/HiLab-git/SSL4MIS), whose ACDC U-Net uses the
    channels (16, 32, 64, 128, 256).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from monai.networks.blocks import Convolution
from torch import nn


def _block(in_channels: int, out_channels: int, dropout: float) -> nn.Module:
    return Convolution(spatial_dims=2, in_channels=in_channels, out_channels=out_channels,
                       kernel_size=3, adn_ordering="DNA", act=("leakyrelu", {"negative_slope": 0.01}),
                       norm="batch", dropout=dropout, dropout_dim=2)


def _level(in_channels: int, out_channels: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(_block(in_channels, out_channels, dropout),
                         _block(out_channels, out_channels, dropout))


class UNet2D(nn.Module):
    """2D U-Net with ``len(channels)`` levels.

    Args:
        in_channels: image channels (1 for MRI).
        n_classes: output classes, background included.
        channels: feature maps per level, e.g. ``(16, 32, 64, 128, 256)``.
        dropout: dropout probability of every block (0.1 in the survey).

    Shapes:
        input ``[n, in_channels, H, W]`` with ``H, W`` multiples of ``2**(levels-1)``; logits
        ``[n, n_classes, H, W]``; :meth:`features` also returns the last decoder features
        ``[n, channels[0], H, W]`` (input of :attr:`head`) and the bottleneck
        ``[n, channels[-1], H/16, W/16]``.

    Example:
        >>> net = UNet2D(1, 4, channels=(4, 8, 16, 32, 64))
        >>> net(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 4, 32, 32])
    """

    def __init__(self, in_channels: int, n_classes: int,
                 channels: Sequence[int] = (16, 32, 64, 128, 256), dropout: float = 0.1) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2:
            raise ValueError(f"a U-Net needs at least 2 levels, got channels={channels}")
        self.channels = channels
        self.n_classes = int(n_classes)
        self.in_channels = int(in_channels)
        self.down = nn.ModuleList()
        prev = in_channels
        for ch in channels:
            self.down.append(_level(prev, ch, dropout))
            prev = ch
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for ch in reversed(channels[:-1]):
            self.upsample.append(nn.ConvTranspose2d(prev, ch, kernel_size=2, stride=2))
            self.up.append(_level(2 * ch, ch, dropout))
            prev = ch
        self.head = nn.Conv2d(channels[0], n_classes, kernel_size=1)

    @property
    def divisor(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** (len(self.channels) - 1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits, last decoder features, bottleneck features)`` of a batch."""
        if x.shape[-1] % self.divisor or x.shape[-2] % self.divisor:
            raise ValueError(f"input size {tuple(x.shape[-2:])} is not a multiple of "
                             f"{self.divisor}")
        skips = []
        for i, level in enumerate(self.down):
            x = level(x if i == 0 else self.pool(x))
            skips.append(x)
        bottleneck = x
        for upsample, level, skip in zip(self.upsample, self.up, reversed(skips[:-1]),
                                         strict=True):
            x = level(torch.cat([upsample(x), skip], dim=1))
        return self.head(x), x, bottleneck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[0]


@contextmanager
def mc_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode with dropout layers active (MC dropout; batch norm stays frozen).

    References:
        Gal and Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016.
    """
    was_training = model.training
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.train()
    try:
        yield model
    finally:
        model.train(was_training)
