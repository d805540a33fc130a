"""Predicted foreground: where the model's most likely class is not the background (class 0).

A pixel-wise indicator, so :meth:`medactive.predictions.Predictions.score` reduces it per slice
(or per patch in region AL) with the task's reduction: with the survey's ``"mean"`` the score
is the fraction of the slice predicted foreground. Under every reduction (``mean``, ``max``,
foreground-weighted mean) a slice scores above 0 exactly when some pixel's argmax is not 0,
which is what :class:`~medactive.strategies.random_foreground.RandomForeground` reads.

Example:
    >>> import numpy as np
    >>> p = np.array([[[0.9, 0.2], [0.1, 0.8]]])  # [n=1, c=2, 2 pixels]
    >>> predicted_foreground(p)
    array([[0., 1.]])

References:
    Lüth et al., "nnActive: A Framework for Evaluation of Active Learning in 3D Biomedical
    Segmentation", 2025 (its foreground-aware random baselines).
"""

from __future__ import annotations

import numpy as np

from medactive._validation import check_probas


def predicted_foreground(probas: np.ndarray) -> np.ndarray:
    """``1.0`` where ``argmax_c p_c != 0`` (not background), else ``0.0``.

    Args:
        probas: ``[n, c, ...]`` probabilities summing to 1 over axis 1 (classification
            ``[n, c]``: class 0 counts as the background).

    Returns:
        ``[n, ...]`` float64 indicators (class axis removed); ties go to the lower class, so
        a pixel tied between background and a class is background.
    """
    probas = check_probas(probas)
    return (probas.argmax(axis=1) != 0).astype(np.float64)
