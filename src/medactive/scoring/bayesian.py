"""Scores of MC-dropout stacks: BALD, MC entropy (DBAL) and mean variance.

Every function takes a stack ``[n, c, ..., t]``: class axis 1, any spatial axes after it, and
the ``t`` stochastic forward passes on the last axis. It returns ``[n, ...]``.

Example:
    >>> import numpy as np
    >>> agree = np.array([[[1.0, 1.0], [0.0, 0.0]]])     # [1, 2, 2]: two confident passes
    >>> disagree = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # they contradict each other
    >>> bald(np.concatenate([agree, disagree])).round(4)
    array([0.    , 0.6931])
"""

from __future__ import annotations

import numpy as np

from medactive._validation import check_probas
from medactive.scoring._arrays import is_device_array, namespace
from medactive.scoring.uncertainty import _entropy


def mc_entropy(mc_probas: np.ndarray) -> np.ndarray:
    """Entropy of the mean prediction over passes, ``H[mean_t p_t]`` (DBAL's max entropy).

    Args:
        mc_probas: ``[n, c, ..., t]`` probabilities of ``t`` MC-dropout passes.

    Returns:
        ``[n, ...]`` scores in ``[0, log c]``.

    References:
        Gal, Islam and Ghahramani, "Deep Bayesian active learning with image data", ICML 2017.
    """
    mc_probas = check_stack(mc_probas)
    return _entropy(namespace(mc_probas).mean(mc_probas, axis=-1), axis=1)


def bald(mc_probas: np.ndarray) -> np.ndarray:
    """Mutual information between prediction and weights: ``H[mean_t p_t] - mean_t H[p_t]``.

    High when the passes are individually confident but disagree with each other.

    Args:
        mc_probas: ``[n, c, ..., t]`` probabilities of ``t`` MC-dropout passes.

    Returns:
        ``[n, ...]`` scores in ``[0, log c]`` (tiny negative rounding is clipped to 0).

    References:
        Houlsby et al., "Bayesian active learning for classification and preference learning",
        2011; Gal, Islam and Ghahramani, ICML 2017.
    """
    mc_probas = check_stack(mc_probas)
    xp = namespace(mc_probas)
    total = _entropy(xp.mean(mc_probas, axis=-1), axis=1)
    expected = xp.mean(_entropy(mc_probas, axis=1), axis=-1)
    if is_device_array(total):  # a torch tensor stays one
        return xp.clip(total - expected, min=0.0)
    return np.maximum(total - expected, 0.0)


def mean_variance(mc_probas: np.ndarray) -> np.ndarray:
    """Mean over classes of the variance over passes: ``(1/c) sum_i Var_t[p_{i,t}]``.

    Args:
        mc_probas: ``[n, c, ..., t]`` probabilities of ``t`` MC-dropout passes.

    Returns:
        ``[n, ...]`` scores ``>= 0`` (population variance over the ``t`` passes).

    References:
        Gal, Islam and Ghahramani, ICML 2017 (the survey's Table 1 "Mean Variance"; its
        single-pass form across classes is :func:`medactive.scoring.class_variance`).
    """
    mc_probas = check_stack(mc_probas)
    xp = namespace(mc_probas)
    return xp.mean(xp.var(mc_probas, axis=-1), axis=1)


def check_stack(stack: np.ndarray, *, name: str = "mc_probas", last: str = "the passes",
                letter: str = "t") -> np.ndarray:
    """``stack`` as an array of probabilities over axis 1 with at least 3 axes, the ``k``
    predictions of a sample (``last``: MC passes, members, augmentations) on the last one."""
    stack = stack if is_device_array(stack) else np.asarray(stack)
    if stack.ndim < 3:
        raise ValueError(f"{name} must be [n, c, ..., {letter}] with {last} last, got shape "
                         f"{tuple(stack.shape)}")
    return check_probas(stack, name=name)

