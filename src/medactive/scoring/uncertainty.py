"""Single-pass uncertainty scores from class probabilities (survey Table 1).

All functions take probabilities ``[n, c, ...]`` (class axis 1; classification ``[n, c]``,
2D segmentation ``[n, c, H, W]``) and return ``[n, ...]`` with the class axis removed. Higher
means more uncertain, so Table 1's "lower is more uncertain" metrics are flipped.

The same functions take torch tensors (any array-API array), e.g. on a GPU
(``--selection-device cuda``), and return a tensor on the same device.

Example:
    >>> import numpy as np
    >>> p = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])
    >>> margin(p)
    array([0.2, 0.8, 1. ])
"""

from __future__ import annotations

import numpy as np

from medactive._validation import check_probas
from medactive.scoring._arrays import is_device_array, namespace


def least_confidence(probas: np.ndarray) -> np.ndarray:
    """``1 - max_i p_i``: high when the most likely class is not very likely.

    Args:
        probas: ``[n, c, ...]`` probabilities summing to 1 over axis 1.

    Returns:
        ``[n, ...]`` scores in ``[0, 1 - 1/c]``.

    References:
        Lewis and Catlett, "Heterogeneous uncertainty sampling for supervised learning", 1994.
    """
    probas = check_probas(probas)
    return 1.0 - namespace(probas).max(probas, axis=1)


def entropy(probas: np.ndarray) -> np.ndarray:
    """Shannon entropy ``-sum_i p_i log p_i`` (natural log, ``0 log 0 = 0``).

    Args:
        probas: ``[n, c, ...]`` probabilities summing to 1 over axis 1.

    Returns:
        ``[n, ...]`` scores in ``[0, log c]``.

    References:
        Joshi et al., "Multi-class active learning for image classification", CVPR 2009.
    """
    return _entropy(check_probas(probas), axis=1)


def margin(probas: np.ndarray) -> np.ndarray:
    """``1 - (p_(1) - p_(2))``: one minus the gap between the two most likely classes.

    Args:
        probas: ``[n, c, ...]`` probabilities summing to 1 over axis 1, ``c >= 2``.

    Returns:
        ``[n, ...]`` scores in ``[0, 1]``; 1 when the two top classes tie.

    References:
        Roth and Small, "Margin-based active learning for structured output spaces", ECML 2006.
    """
    probas = check_probas(probas)
    if probas.shape[1] < 2:
        raise ValueError(f"margin needs at least 2 classes, got probas of shape {probas.shape}")
    if is_device_array(probas):
        top2 = namespace(probas).sort(probas, axis=1, descending=True)[:, :2]
    else:
        top2 = -np.partition(-probas, 1, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def class_variance(probas: np.ndarray) -> np.ndarray:
    """Table 1's single-pass "mean variance": ``-(1/C) sum_i (p_i - 1/C)^2``.

    The variance of the probability vector across classes is largest for a one-hot prediction
    and zero for a uniform one, so its negative is an uncertainty (``0`` = most uncertain).
    The MC-dropout form (variance over passes) is :func:`medactive.scoring.mean_variance`.

    Args:
        probas: ``[n, c, ...]`` probabilities summing to 1 over axis 1.

    Returns:
        ``[n, ...]`` scores in ``[-(c-1)/c^2, 0]``.

    References:
        Wang et al., "A comprehensive survey on deep active learning in medical image
        analysis", 2024, Table 1 (citing Gal et al., 2017).
    """
    probas = check_probas(probas)
    return -namespace(probas).var(probas, axis=1)


def _entropy(probas: np.ndarray, axis: int) -> np.ndarray:
    # p log p with 0 log 0 = 0: log of max(p, tiny) is finite and p = 0 multiplies it to 0
    # (a subnormal p changes by < 1e-305); in place, so one temporary of the input's size
    if is_device_array(probas):
        xp = namespace(probas)
        logs = xp.log(xp.clip(probas, min=xp.finfo(probas.dtype).tiny))
        return -xp.sum(logs * probas, axis=axis)
    probas = np.asarray(probas)
    tiny = np.finfo(probas.dtype if probas.dtype.kind == "f" else np.float64).tiny
    logs = np.maximum(probas, tiny)
    np.log(logs, out=logs)
    logs *= probas
    return -logs.sum(axis=axis)
