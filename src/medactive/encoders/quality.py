"""How good an encoder's features are, before any label is spent: kNN and linear probe.

The standard yardsticks of self-supervised learning (Wu et al. 2018 for the kNN monitor;
Chen et al. 2020, SimCLR, for the linear evaluation protocol): both fit on the features of every
labelled training sample and report accuracy on val and test.

- :func:`knn_accuracy`: majority vote of the ``k`` = 20 nearest training samples under cosine
  similarity (ties go to the lowest class index). Unweighted, so the figure can be checked by
  hand; the weighted vote of Wu et al. differs by a fraction of a point.
- :func:`linear_probe_accuracy`: multinomial logistic regression (scikit-learn, L-BFGS) on
  standardised features, ``C`` = 1.

Example:
    >>> import numpy as np
    >>> train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> knn_accuracy(train, np.array([0, 0, 1, 1]), np.array([[1.0, 0.05]]), np.array([0]), k=1)
    1.0
"""

from __future__ import annotations

import numpy as np

from medactive.errors import ConfigError


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn_predict(train: np.ndarray, train_labels: np.ndarray, query: np.ndarray, *, k: int = 20,
                n_classes: int | None = None, block: int = 2048) -> np.ndarray:
    """Majority-vote class of each ``query`` row among its ``k`` cosine-nearest ``train`` rows.

    Args:
        train: ``[n, d]`` features of labelled samples.
        train_labels: ``[n]`` their class indices.
        query: ``[m, d]`` features to classify.
        k: neighbours (at most ``n``).
        n_classes: number of classes (default: ``max label + 1``).
        block: query rows per similarity block (bounds memory at ``block * n`` floats).

    Returns:
        ``[m]`` predicted class indices.
    """
    train_labels = np.asarray(train_labels, dtype=np.int64)
    if train.ndim != 2 or query.ndim != 2 or train.shape[1] != query.shape[1]:
        raise ConfigError(f"features must be [n, d] and [m, d], got {train.shape} and "
                          f"{query.shape}")
    if train_labels.shape != (train.shape[0],):
        raise ConfigError(f"{train.shape[0]} training rows but {train_labels.size} labels")
    if not 1 <= k <= train.shape[0]:
        raise ConfigError(f"k must be in 1..{train.shape[0]}, got {k}")
    n_classes = int(train_labels.max()) + 1 if n_classes is None else n_classes
    a, b = _unit_rows(train), _unit_rows(query)
    out = np.empty(b.shape[0], dtype=np.int64)
    for start in range(0, b.shape[0], block):
        sim = b[start:start + block] @ a.T
        nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        votes = np.zeros((sim.shape[0], n_classes), dtype=np.int64)
        np.add.at(votes, (np.repeat(np.arange(sim.shape[0]), k), train_labels[nearest].ravel()),
                  1)
        out[start:start + sim.shape[0]] = votes.argmax(axis=1)
    return out


def knn_accuracy(train: np.ndarray, train_labels: np.ndarray, query: np.ndarray,
                 query_labels: np.ndarray, *, k: int = 20) -> float:
    """Accuracy of :func:`knn_predict` on ``query`` with ``query_labels``."""
    n_classes = int(max(np.max(train_labels), np.max(query_labels))) + 1
    pred = knn_predict(train, train_labels, query, k=min(k, len(train)), n_classes=n_classes)
    return float(np.mean(pred == np.asarray(query_labels)))


def linear_probe_accuracy(train: np.ndarray, train_labels: np.ndarray,
                          evals: dict[str, tuple[np.ndarray, np.ndarray]], *, seed: int = 0,
                          max_iter: int = 1000) -> dict[str, float]:
    """Accuracy of a logistic-regression probe fitted on ``train`` for each eval split.

    Args:
        train: ``[n, d]`` training features; train_labels: ``[n]``.
        evals: ``name -> (features [m, d], labels [m])``.

    Returns:
        ``name -> accuracy``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=max_iter,
                                                               random_state=seed))
    probe.fit(np.asarray(train, dtype=np.float64), np.asarray(train_labels))
    return {name: float(np.mean(probe.predict(np.asarray(x, dtype=np.float64)) == np.asarray(y)))
            for name, (x, y) in evals.items()}


def encoder_quality(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], *,
                    k: int = 20, seed: int = 0) -> dict[str, float]:
    """kNN and linear-probe accuracy on ``val`` and ``test`` from ``train`` features.

    Args:
        features: ``split -> [n, d]`` for ``"train"`` and any of ``"val"``, ``"test"``.
        labels: ``split -> [n]`` class indices for the same splits.

    Returns:
        ``{"knn_val": ..., "knn_test": ..., "linear_val": ..., "linear_test": ..., "k": k}``
        (a split without samples is left out).
    """
    train, y = features["train"], labels["train"]
    evals = {s: (features[s], labels[s]) for s in ("val", "test")
             if s in features and len(features[s])}
    out: dict[str, float] = {"k": float(min(k, len(train)))}
    for split, (x, t) in evals.items():
        out[f"knn_{split}"] = knn_accuracy(train, y, x, t, k=k)
    if len(np.unique(y)) >= 2:
        for split, acc in linear_probe_accuracy(train, y, evals, seed=seed).items():
            out[f"linear_{split}"] = acc
    return out
