"""Classification networks with a penultimate-embedding hook and an MC-dropout head.

A :class:`Classifier` is ``backbone -> features h [n, d] -> dropout -> linear -> logits``. The
dropout sits only in the head, so MC dropout (Gal et al., 2017) runs the backbone once and samples
the head ``t`` times (:meth:`Classifier.mc_head`), and BADGE's last-layer gradient factorises over
``h`` and ``p - e_y`` (Ash et al., 2020).

Backbones (:mod:`medactive.encoders.backbones`): MONAI's ResNet-18 (``"resnet18"``) and a small
4-block CNN (``"smallcnn"``) for CPU presets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medactive._random import derive_seed
from medactive.encoders.backbones import build_backbone
from medactive.tasks.evidential import expected_probas

#: uniforms drawn at once for per-row dropout masks (float32: 16 MB)
_MASK_BLOCK_ELEMENTS = 1 << 22


class Classifier(nn.Module):
    """Backbone + dropout + linear head.

    Args:
        backbone: module mapping ``[n, C, H, W]`` to features ``[n, d]`` with ``out_features``.
        n_classes: number of classes.
        dropout: dropout probability before the last layer (0 disables MC dropout's spread).
    """

    #: trained with the evidential loss (:mod:`medactive.tasks.evidential`): :meth:`probas` is
    #: the Dirichlet mean ``alpha / S`` instead of the softmax (set by the training functions)
    evidential: bool = False

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

    def probas(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[n, c]`` of ``logits``: softmax, or ``alpha / S`` for an
        evidential model."""
        if self.evidential:
            return expected_probas(logits)
        return torch.softmax(logits, dim=1)

    def mc_head(self, h: torch.Tensor, n_samples: int, generator: torch.Generator | None = None,
                *, row_seeds: Sequence[int] | None = None) -> torch.Tensor:
        """Class probabilities ``[n, c, t]`` of ``t`` dropout masks applied to features ``h``.

        Args:
            h: ``[n, d]`` penultimate features.
            n_samples: passes ``t``.
            generator: draws the masks of the whole batch (they then depend on the batch).
            row_seeds: ``[n]`` one seed per row instead: row ``i``'s ``t`` masks come from a
                generator seeded with ``row_seeds[i]``, so a sample's passes are the same
                whichever rows share its batch (:func:`row_dropout_masks`).
        """
        keep = 1.0 - self.dropout_p
        if self.dropout_p > 0 and row_seeds is not None:
            # rows in blocks so the [rows, t, d] uniforms stay ~16 MB whatever the batch
            step = max(1, _MASK_BLOCK_ELEMENTS // (n_samples * h.shape[1]))
            out = []
            for start in range(0, h.shape[0], step):
                rows = h[start:start + step]
                masks = row_dropout_masks(row_seeds[start:start + step], n_samples,
                                          h.shape[1], keep).to(h.device)
                out.append(torch.stack([self.probas(self.fc(rows * masks[:, k] / keep))
                                        for k in range(n_samples)], dim=-1))
            return torch.cat(out) if out else self.mc_head(h, n_samples)
        out = []
        for _ in range(n_samples):
            if self.dropout_p > 0:
                mask = torch.rand(h.shape, generator=generator, device="cpu").to(h.device) < keep
                h_t = h * mask / keep
            else:
                h_t = h
            out.append(self.probas(self.fc(h_t)))
        return torch.stack(out, dim=-1)


def mc_row_seeds(seed: int, idx: Sequence[int]) -> list[int]:
    """Per-sample MC-dropout seeds ``derive_seed(seed, "mc_dropout", i)`` for pool indices
    ``idx``: a sample's masks depend on the round's seed and the sample, not on the blocking."""
    return [derive_seed(seed, "mc_dropout", int(i)) for i in idx]


def row_dropout_masks(row_seeds: Sequence[int], n_samples: int, dim: int, keep: float,
                      ) -> torch.Tensor:
    """Keep-masks ``[n, t, d]`` (bool, CPU), row ``i`` drawn from its own generator seeded with
    ``row_seeds[i]`` (one ``[t, d]`` draw a row, one reseeded generator for all rows)."""
    uniform = torch.empty(len(row_seeds), n_samples, dim)
    gen = torch.Generator()
    for i, seed in enumerate(row_seeds):
        torch.rand((n_samples, dim), generator=gen.manual_seed(int(seed)), out=uniform[i])
    return uniform < keep


def build_classifier(name: str, *, in_channels: int, n_classes: int, width: int | None = None,
                     dropout: float = 0.0) -> Classifier:
    """Build a registered classifier by name (``"resnet18"`` or ``"smallcnn"``)."""
    return Classifier(build_backbone(name, in_channels=in_channels, width=width), n_classes,
                      dropout)
