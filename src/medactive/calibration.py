"""Calibration of class probabilities: expected calibration error and temperature scaling.

A model is calibrated when, among the samples it gives confidence ``p``, a fraction ``p`` is
right. The *expected calibration error* (ECE) measures the gap with equal-width confidence
bins; *temperature scaling* divides the logits by one scalar ``T`` fitted to minimise the
negative log-likelihood (NLL) of held-out labels, which changes the confidence but never the
predicted class (the argmax of ``z / T`` is the argmax of ``z`` for any ``T > 0``).

Probabilities stand in for logits where only probabilities are kept: ``log p`` differs from
the logits ``z`` by ``logsumexp(z)``, a per-row constant, so ``softmax(log p / T)`` equals
``softmax(z / T)``. The functions here take either.

References:
    Naeini, Cooper & Hauskrecht, "Obtaining well calibrated probabilities using Bayesian
    binning", AAAI 2015 (ECE). Guo, Pleiss, Sun & Weinberger, "On calibration of modern neural
    networks", ICML 2017 (15 bins, temperature scaling).

Example:
    >>> import numpy as np
    >>> p = np.array([[0.9, 0.1], [0.75, 0.25]]); y = np.array([0, 1])
    >>> round(expected_calibration_error(p, y), 3)  # (0.5 |1 - 0.9| + 0.5 |0 - 0.75|)
    0.425
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: the standard number of equal-width confidence bins (Guo et al., 2017)
N_BINS = 15
#: the smallest probability taken into a logarithm (a probability of exactly 0 stays finite)
EPS = 1e-12
#: the temperatures searched, as ``[T_min, T_max]``
T_BOUNDS = (0.05, 20.0)


def _check(probas: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probas = np.asarray(probas, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if probas.ndim != 2 or probas.shape[0] != labels.shape[0] or probas.shape[1] < 2:
        raise ValueError(f"probabilities must be [n, c] with c >= 2 and n = {labels.shape[0]} "
                         f"labels, got {probas.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= probas.shape[1]):
        raise ValueError(f"labels must be class indices in 0..{probas.shape[1] - 1}")
    if not np.all(np.isfinite(probas)):
        raise ValueError("probabilities contain NaN or infinite values")
    return probas, labels.astype(np.int64)


def expected_calibration_error(probas: np.ndarray, labels: np.ndarray, *,
                               n_bins: int = N_BINS) -> float:
    """ECE of class probabilities with ``n_bins`` equal-width confidence bins.

    A sample's confidence is its largest probability; bin ``b`` holds the confidences in
    ``(b / n_bins, (b + 1) / n_bins]``. ``ECE = sum_b |B_b| / n * |acc(B_b) - conf(B_b)|``
    where ``acc`` is the fraction of the bin whose argmax is the label and ``conf`` its mean
    confidence.

    Args:
        probas: ``[n, c]`` class probabilities (rows sum to 1).
        labels: ``[n]`` class indices.
        n_bins: number of bins (15 in Guo et al., 2017).

    Returns:
        The ECE in ``[0, 1]`` (NaN for ``n = 0``).
    """
    probas, labels = _check(probas, labels)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if labels.size == 0:
        return float("nan")
    confidence = probas.max(axis=1)
    correct = probas.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b = (edges[b], edges[b + 1]]; a confidence of 0 joins the first bin
    bins = np.searchsorted(edges[1:-1], confidence, side="left")
    total = 0.0
    for b in np.unique(bins):
        members = bins == b
        total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(total / labels.size)


def log_probas(probas: np.ndarray) -> np.ndarray:
    """``log p`` (clipped at :data:`EPS`): logits up to a per-row constant, ``[n, c]``."""
    return np.log(np.clip(np.asarray(probas, dtype=np.float64), EPS, None))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / T)``, ``[n, c]`` (``logits`` may be ``log p``)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray,
                            temperature: float = 1.0) -> float:
    """Mean NLL of ``labels`` under ``softmax(logits / T)``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float(np.mean(lse - z[np.arange(labels.size), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *,
                    bounds: tuple[float, float] = T_BOUNDS) -> float:
    """The temperature ``T`` in ``bounds`` minimising the NLL of ``labels``.

    The NLL is convex in ``1 / T`` (a log-sum-exp of functions linear in it, minus a linear
    term), so a bounded scalar search finds the one minimum.

    Args:
        logits: ``[n, c]`` logits or log-probabilities (:func:`log_probas`).
        labels: ``[n]`` class indices, ``n >= 1``.
        bounds: the temperatures searched.

    Returns:
        ``T`` (``> 1`` softens an over-confident model, ``< 1`` sharpens an under-confident one).
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size == 0:
        raise ValueError("fitting a temperature needs at least one labelled sample")
    lo, hi = bounds
    res = minimize_scalar(lambda beta: negative_log_likelihood(logits * beta, labels),
                          bounds=(1.0 / hi, 1.0 / lo), method="bounded",
                          options={"xatol": 1e-6})
    return float(1.0 / res.x)


@dataclass(frozen=True)
class Calibration:
    """A model's calibration on labelled samples, before and after temperature scaling."""

    temperature: float
    ece: float
    ece_calibrated: float
    nll: float
    nll_calibrated: float
    n: int
    n_bins: int = N_BINS

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def calibrate(probas: np.ndarray, labels: np.ndarray, *, n_bins: int = N_BINS) -> Calibration:
    """Fit a temperature on ``(probas, labels)`` and measure ECE and NLL before and after.

    Args:
        probas: ``[n, c]`` class probabilities of labelled (validation) samples, ``n >= 1``.
        labels: ``[n]`` their class indices.
        n_bins: ECE bins.

    Example:
        >>> import numpy as np
        >>> p = np.array([[0.99, 0.01], [0.99, 0.01], [0.01, 0.99], [0.99, 0.01]])
        >>> c = calibrate(p, np.array([0, 1, 1, 0]))
        >>> c.temperature > 1 and c.nll_calibrated < c.nll
        True
    """
    probas, labels = _check(probas, labels)
    logits = log_probas(probas)
    t = fit_temperature(logits, labels)
    scaled = apply_temperature(logits, t)
    return Calibration(temperature=t,
                       ece=expected_calibration_error(probas, labels, n_bins=n_bins),
                       ece_calibrated=expected_calibration_error(scaled, labels, n_bins=n_bins),
                       nll=negative_log_likelihood(logits, labels),
                       nll_calibrated=negative_log_likelihood(logits, labels, t),
                       n=int(labels.size), n_bins=int(n_bins))
