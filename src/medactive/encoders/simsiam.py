"""SimSiam: self-supervised pretraining without negatives or a momentum encoder.

Survey §4.2: the second pool-encoder method beside SimCLR (:mod:`medactive.encoders.simclr`,
whose training loop, backbones and augmentation it shares). Each image gives two views; the
backbone and a projector map them to ``z1, z2``, a small predictor maps those to ``p1, p2``, and
the loss :func:`simsiam_loss` is the symmetric negative cosine
``D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2`` with ``sg`` the stop-gradient: the targets are
constants, so the network can only move ``p`` towards ``z``, which is what keeps it from
collapsing to a constant without negatives (Chen and He 2021, §4). It needs no other images in
the loss (SimCLR's ``2n - 2`` negatives) and no EMA target network (BYOL), so a step costs what a
SimCLR step costs and the small CPU batches do not weaken it (the paper's Table 2: batch 64 to
4096 within 1 point).

Heads (the paper's CIFAR variant, scaled to the backbone): projector
``d -> d (BN, ReLU) -> projection_dim (BN)``; predictor, a bottleneck
``projection_dim -> predictor_dim (BN, ReLU) -> projection_dim``. Only the backbone is kept.

References:
    Chen and He, "Exploring simple Siamese representation learning", CVPR 2021.

Example:
    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> round(negative_cosine(z, z).item(), 4)
    -1.0
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``D(p, sg(z))``: minus the mean cosine similarity of the rows of ``p`` and ``z``.

    The target ``z`` is detached (stop-gradient): no gradient flows into it.

    Args:
        p: ``[n, d]`` predictions.
        z: ``[n, d]`` targets.

    Returns:
        A scalar tensor in ``[-1, 1]`` (-1: every row points the same way as its target).
    """
    if p.shape != z.shape or p.ndim != 2:
        raise ValueError(f"p and z must be [n, d] of the same shape, got {tuple(p.shape)} and "
                         f"{tuple(z.shape)}")
    return -(F.normalize(p, dim=1) * F.normalize(z.detach(), dim=1)).sum(dim=1).mean()


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor,
                 z2: torch.Tensor) -> torch.Tensor:
    """SimSiam's symmetric loss ``D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2`` (all ``[n, d]``;
    row ``k`` of each is image ``k``)."""
    return 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))


class SimSiamHead(nn.Module):
    """Projector and predictor on top of a backbone's features ``[n, in_features]``.

    ``forward`` returns ``(z, p)``: the projections ``[n, projection_dim]`` (the targets) and
    the predictions of them ``[n, projection_dim]``.
    """

    def __init__(self, in_features: int, projection_dim: int, predictor_dim: int) -> None:
        super().__init__()
        self.projector = nn.Sequential(
            nn.Linear(in_features, in_features, bias=False), nn.BatchNorm1d(in_features),
            nn.ReLU(inplace=True), nn.Linear(in_features, projection_dim, bias=False),
            nn.BatchNorm1d(projection_dim, affine=False))
        self.predictor = nn.Sequential(
            nn.Linear(projection_dim, predictor_dim, bias=False), nn.BatchNorm1d(predictor_dim),
            nn.ReLU(inplace=True), nn.Linear(predictor_dim, projection_dim))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.projector(h)
        return z, self.predictor(z)


def simsiam_objective(head: SimSiamHead, h: torch.Tensor) -> torch.Tensor:
    """The loss of a batch of features ``h`` ``[2n, d]`` whose rows ``k`` and ``n + k`` are
    the two views of image ``k`` (the shared loop's layout)."""
    n = h.shape[0] // 2
    z, p = head(h)
    return simsiam_loss(p[:n], p[n:], z[:n], z[n:])
