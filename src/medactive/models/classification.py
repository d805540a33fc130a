"""Classification networks with a penultimate-embedding hook and an MC-dropout head.

A :class:`Classifier` is ``backbone -> features h [n, d] -> dropout -> linear -> logits``. The
dropout sits only in the head, so MC dropout (Gal et al., 2017) runs the backbone once and samples
the head ``t`` times (:meth:`Classifier.mc_head`), and BADGE's last-layer gradient factorises over
``h`` and ``p - e_y`` (Ash et al., 2020).

Backbones: MONAI's ResNet-18 (``"resnet18"``, the survey's network, optionally narrowed by
``width``) and a small 4-block CNN (``"smallcnn"``) for CPU presets.
"""

from __future__ import annotations

import torch
from monai.networks.nets import ResNet
from torch import nn

from medactive.errors import ConfigError


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


class _ResNetBackbone(nn.Module):
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


class Classifier(nn.Module):
    """Backbone + dropout + linear head.

    Args:
        backbone: module mapping ``[n, C, H, W]`` to features ``[n, d]`` with ``out_features``.
        n_classes: number of classes.
        dropout: dropout probability before the last layer (0 disables MC dropout's spread).
    """

    def __init__(self, backbone: nn.Module, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout_p = float(dropout)
        self.fc = nn.Linear(backbone.out_features, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding ``[n, d]``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.fc(nn.functional.dropout(h, self.dropout_p, training=self.training))

    def mc_head(self, h: torch.Tensor, n_samples: int, generator: torch.Generator | None = None,
                ) -> torch.Tensor:
        """Class probabilities ``[n, c, t]`` of ``t`` dropout masks applied to features ``h``."""
        out = []
        keep = 1.0 - self.dropout_p
        for _ in range(n_samples):
            if self.dropout_p > 0:
                mask = torch.rand(h.shape, generator=generator, device="cpu").to(h.device) < keep
                h_t = h * mask / keep
            else:
                h_t = h
            out.append(torch.softmax(self.fc(h_t), dim=1))
        return torch.stack(out, dim=-1)


def build_classifier(name: str, *, in_channels: int, n_classes: int, width: int | None = None,
                     dropout: float = 0.0) -> Classifier:
    """Build a registered classifier by name (``"resnet18"`` or ``"smallcnn"``)."""
    if name == "resnet18":
        backbone: nn.Module = _ResNetBackbone(in_channels, width or 64)
    elif name == "smallcnn":
        backbone = SmallCNN(in_channels, width or 16)
    else:
        raise ConfigError(f"unknown model {name!r}; choose resnet18 or smallcnn")
    return Classifier(backbone, n_classes, dropout)
