"""Classification networks with a penultimate-embedding hook and an MC-dropout head.

A :class:`Classifier` is ``backbone -> features h [n, d] -> dropout -> linear -> logits``. The
dropout sits only in the head, so MC dropout (Gal et al., 2017) runs the backbone once and samples
the head ``t`` times (:meth:`Classifier.mc_head`), and BADGE's last-layer gradient factorises over
``h`` and ``p - e_y`` (Ash et al., 2020).

Backbones (:mod:`medactive.encoders.backbones`): MONAI's ResNet-18 (``"resnet18"``) and a small
4-block CNN (``"smallcnn"``) for CPU presets.
"""

from __future__ import annotations

import torch
from torch import nn

from medactive.encoders.backbones import build_backbone


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
    return Classifier(build_backbone(name, in_channels=in_channels, width=width), n_classes,
                      dropout)
