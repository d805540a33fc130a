"""Data disagreement: how much a model's predictions change under test-time augmentation.

Survey §3.1.1, "data disagreement": instead of training several models, perturb the input and
measure how far the predictions of the perturbed versions drift apart; the KL divergence is the
usual measure (Wu et al. 2021 between augmented versions of CT scans; Siddiqui et al. 2020
between viewpoints; Lyu et al. 2023's input-end committee). The stack ``[n, c, ..., t]`` holds
the predictions on ``t`` random augmentations of each input (class axis 1, spatial axes after
it, augmentations last), each mapped back to the input's frame for dense outputs; it is built
by the task (:mod:`medactive.tasks.tta`) and reaches strategies as ``"tta_probas"``.

Example:
    >>> import numpy as np
    >>> stack = np.array([[[0.8, 0.4], [0.2, 0.6]]])   # [1, 2, 2]: two augmented views
    >>> tta_kl(stack).round(4)
    array([0.0863])

References:
    Wu et al., "COVID-AL: The diagnosis of COVID-19 with deep active learning", Medical Image
    Analysis 68, 101913, 2021. Siddiqui, Valentin and Niessner, "ViewAL: Active learning with
    viewpoint entropy for semantic segmentation", CVPR 2020. Lyu et al., "Box-level active
    detection", CVPR 2023.
"""

from __future__ import annotations

import numpy as np

from medactive.scoring.bayesian import bald, check_stack


def tta_kl(tta_probas: np.ndarray) -> np.ndarray:
    """Mean KL divergence of each augmented prediction to their mean, per sample (and pixel).

    ``(1/t) sum_t KL(p_t || p_bar)`` with ``p_bar = (1/t) sum_t p_t``. Expanding the KL,
    ``(1/t) sum_t sum_c p_t log(p_t / p_bar) = H[p_bar] - (1/t) sum_t H[p_t]``: exactly BALD's
    mutual-information form, taken over the augmentation stack instead of MC-dropout passes,
    so it is computed by :func:`medactive.scoring.bald` (which also handles zero
    probabilities, where ``0 log 0 = 0``).

    Args:
        tta_probas: ``[n, c, ..., t]`` probabilities on ``t`` test-time augmentations.

    Returns:
        ``[n, ...]`` scores in ``[0, log c]``; 0 where every augmentation gives the same
        prediction.

    Raises:
        ValueError: fewer than 3 axes, or values that are not probabilities over axis 1.

    References:
        Wu et al., Medical Image Analysis 2021 (COVID-AL); survey §3.1.1.
    """
    return bald(check_stack(tta_probas, name="tta_probas", last="the augmentations"))
