"""Classification metrics: accuracy, balanced accuracy, AUC and per-class recall.

The AUC is reported as it is: binary uses the probability of class 1, multi-class the macro
one-vs-rest average; no ``max(AUC, 1 - AUC)`` flip. Where a class is absent from ``y_true`` the
AUC is undefined and reported as NaN.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score


def classification_metrics(y_true: np.ndarray, probas: np.ndarray) -> dict[str, float]:
    """Metrics of predicted probabilities.

    Args:
        y_true: ``[n]`` int labels in ``0..c-1``.
        probas: ``[n, c]`` class probabilities.

    Returns:
        ``accuracy``, ``balanced_accuracy``, ``auc`` and ``recall_<k>`` for each class ``k``.

    Example:
        >>> m = classification_metrics(np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]]))
        >>> m["accuracy"], m["auc"]
        (1.0, 1.0)
    """
    y_true = np.asarray(y_true).reshape(-1)
    probas = np.asarray(probas, dtype=np.float64)
    if probas.ndim != 2 or probas.shape[0] != y_true.shape[0]:
        raise ValueError(f"probas must be [n, c] with n={y_true.shape[0]}, got {probas.shape}")
    if not np.all(np.isfinite(probas)):
        raise ValueError("probas contains NaN or infinite values (the model diverged)")
    n_classes = probas.shape[1]
    y_pred = probas.argmax(axis=1)
    labels = np.arange(n_classes)
    with warnings.catch_warnings():
        # tiny validation sets miss classes; the NaN/zero values below are the documented answer
        warnings.simplefilter("ignore", UserWarning)
        out = {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "auc": _auc(y_true, probas),
        }
    recalls = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    out.update({f"recall_{k}": float(r) for k, r in zip(labels, recalls)})
    return out


def _auc(y_true: np.ndarray, probas: np.ndarray) -> float:
    present = np.unique(y_true)
    n_classes = probas.shape[1]
    if n_classes == 2:
        if present.size < 2:
            return float("nan")
        return float(roc_auc_score(y_true, probas[:, 1]))
    if present.size < n_classes:
        return float("nan")
    # renormalise in float64: sklearn checks that multi-class scores sum to 1
    p = probas / probas.sum(axis=1, keepdims=True)
    return float(roc_auc_score(y_true, p, multi_class="ovr", average="macro",
                               labels=np.arange(n_classes)))
