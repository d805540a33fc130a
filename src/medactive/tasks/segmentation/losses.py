"""Dice + cross-entropy on partially labelled slices (region-based AL, survey §4.3.1).

When the labelling unit is a patch, a training slice is labelled only where its labelled
patches are; the rest of its label map holds :data:`IGNORE_INDEX`. :func:`partial_dice_ce`
computes the loss of :mod:`.train` (MONAI :class:`~monai.losses.DiceCELoss` with
``to_onehot_y=True, softmax=True``) on the labelled pixels only:

- cross-entropy averaged over labelled pixels (``ignore_index``);
- the Dice term with both the softmax prediction and the one-hot target multiplied by the
  labelled mask, so unlabelled pixels add nothing to the intersection or to either sum.

On a fully labelled batch both terms equal MONAI's (same smoothing ``1e-5``, background
included, mean over classes and, unless ``batch``, over samples).

References:
    Mackowiak et al., "CEREALS - Cost-Effective REgion-based Active Learning for Semantic
    Segmentation", BMVC 2018 (patch labels, loss on labelled pixels only).

Example:
    >>> logits = torch.zeros(1, 2, 2, 2)
    >>> target = torch.tensor([[[0, 1], [IGNORE_INDEX, IGNORE_INDEX]]])
    >>> round(float(partial_dice_ce(logits, target)), 4)  # Dice 0.5 + CE log 2
    1.1931
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: label value of pixels nobody labelled (moves with the labels under augmentation)
IGNORE_INDEX = -1


def partial_dice_ce(logits: torch.Tensor, target: torch.Tensor,
                    labelled: torch.Tensor | None = None, *, batch: bool = False,
                    smooth: float = 1e-5, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Dice + cross-entropy over labelled pixels only (a scalar).

    Args:
        logits: ``[b, c, h, w]`` network outputs.
        target: ``[b, h, w]`` int64 class indices (``ignore_index`` where unlabelled).
        labelled: ``[b, h, w]`` bool mask of labelled pixels; ``None``:
            ``target != ignore_index``. Target values outside it are never read.
        batch: Dice over the whole batch per class (MONAI ``batch=True``) instead of per
            sample.
        smooth: MONAI's ``smooth_nr`` and ``smooth_dr``.
        ignore_index: the unlabelled value of ``target``.

    Returns:
        ``dice + ce``; a batch with no labelled pixel gives 0 cross-entropy (and a Dice term
        with zero gradient), not NaN.
    """
    if labelled is None:
        labelled = target != ignore_index
    labelled = labelled.bool()
    n_classes = logits.shape[1]
    target = torch.where(labelled, target.long(), torch.zeros_like(target, dtype=torch.long))
    valid = labelled[:, None].to(logits.dtype)
    probas = torch.softmax(logits, dim=1) * valid
    onehot = F.one_hot(target, n_classes).permute(0, 3, 1, 2).to(logits.dtype) * valid
    dims = (0, 2, 3) if batch else (2, 3)
    inter = (probas * onehot).sum(dim=dims)
    denom = probas.sum(dim=dims) + onehot.sum(dim=dims)
    dice = (1.0 - (2.0 * inter + smooth) / (denom + smooth)).mean()
    ce_map = F.cross_entropy(logits, target, reduction="none")
    ce = (ce_map * labelled).sum() / labelled.sum().clamp(min=1)
    return dice + ce
