"""CNN backbones: what a pool encoder is and what a classifier puts its head on.

Each maps ``[n, C, H, W]`` to features ``[n, d]`` and says ``d`` as ``out_features``:
MONAI's ResNet-18 (``"resnet18"``, the survey's network, optionally narrowed by ``width``) and a
small 4-block CNN (``"smallcnn"``) for CPU presets. :func:`build_backbone` builds one by name;
:class:`~medactive.tasks.classification.model.Classifier` adds the dropout + linear head.
"""

from __future__ import annotations

import torch
from monai.networks.nets import ResNet
from torch import nn

from medactive.errors import ConfigError

BACKBONES = ("resnet18", "smallcnn")


class SmallCNN(nn.Module):
    """Four conv–BN–ReLU blocks (max-pool after the first three) and global average pooling.

    Args:
        in_channels: image channels.
        width: channels of the first block; doubled at each block (feature dim ``8 * width``).
    """

    def __init__(self, in_channels: int, width: int = 16) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                       nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.out_features = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.body(x), 1), 1)


class ResNetBackbone(nn.Module):
    """MONAI ResNet-18 (2D) without its final linear layer."""

    def __init__(self, in_channels: int, width: int = 64) -> None:
        super().__init__()
        planes = [width, 2 * width, 4 * width, 8 * width]
        self.net = ResNet(block="basic", layers=[2, 2, 2, 2], block_inplanes=planes,
                          spatial_dims=2, n_input_channels=in_channels, num_classes=1,
                          feed_forward=False)
        self.out_features = 8 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_backbone(name: str, *, in_channels: int, width: int | None = None) -> nn.Module:
    """Build a registered backbone by name (``"resnet18"`` or ``"smallcnn"``)."""
    if name == "resnet18":
        return ResNetBackbone(in_channels, width or 64)
    if name == "smallcnn":
        return SmallCNN(in_channels, width or 16)
    raise ConfigError(f"unknown model {name!r}; choose resnet18 or smallcnn")


def skip_head_init(backbone: nn.Module) -> None:
    """Draw (and drop) the initial weights of a one-class linear head on ``backbone``.

    Encoders used to be cut from a one-class classifier, whose head took its initial weights
    from the global torch generator after the backbone. Pretraining calls this after
    :func:`build_backbone` so that whatever it initialises next (the projection head) starts
    from the same random numbers as before: the same seed gives the same encoder.
    """
    nn.Linear(backbone.out_features, 1)
