"""Scores of an evidential (Dirichlet) head: total uncertainty ``K / S`` and the Dirichlet's
mutual information (epistemic part).

An evidential classifier (Sensoy et al. 2018; the head and its loss are in
:mod:`medactive.tasks.evidential`) outputs, per sample, the parameters ``alpha [c]`` (all > 0)
of a Dirichlet over the class probabilities ``pi``. With ``S = sum_k alpha_k`` (the Dirichlet
strength) and ``K = c``:

- :func:`dirichlet_vacuity`: ``u = K / S`` in ``(0, 1]``, Sensoy et al.'s uncertainty mass (1
  when there is no evidence at all, ``alpha = 1``).
- :func:`dirichlet_mutual_information`: ``I[y, pi] = H[E pi] - E[H[Cat(pi)]]`` under
  ``Dir(alpha)``, in closed form (Malinin & Gales 2018, the "mutual information" measure of
  their Eq. for distributional uncertainty)::

      I = -sum_k (alpha_k / S) * (log(alpha_k / S) - psi(alpha_k + 1) + psi(S + 1))

  with ``psi`` the digamma function; it tends to ``(K - 1) / (2 S)`` -> 0 as evidence grows.

Both take ``alpha`` ``[n, c, ...]`` (class axis 1, any spatial axes after it) and return
``[n, ...]``; higher is more informative.

References:
    Sensoy, Kaplan and Kandemir, "Evidential deep learning to quantify classification
    uncertainty", NeurIPS 2018. Malinin and Gales, "Predictive uncertainty estimation via prior
    networks", NeurIPS 2018.

Example:
    >>> import numpy as np
    >>> dirichlet_vacuity(np.array([[1.0, 1.0, 1.0], [10.0, 1.0, 1.0]])).tolist()
    [1.0, 0.25]
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma


def _check_alpha(alpha: np.ndarray) -> np.ndarray:
    alpha = np.asarray(alpha, dtype=np.float64)
    if alpha.ndim < 2:
        raise ValueError(f"dirichlet alpha must be [n, c, ...] with classes on axis 1, got "
                         f"shape {alpha.shape}")
    if alpha.size and not (np.all(np.isfinite(alpha)) and alpha.min() > 0):
        raise ValueError("dirichlet alpha must be finite and > 0 (alpha = evidence + 1)")
    return alpha


def dirichlet_vacuity(alpha: np.ndarray) -> np.ndarray:
    """Total uncertainty ``u = K / S`` of ``Dir(alpha)`` (Sensoy et al. 2018, Eq. 1).

    Args:
        alpha: ``[n, c, ...]`` Dirichlet parameters, all > 0.

    Returns:
        ``[n, ...]`` in ``(0, K / c_min]``; exactly 1 for ``alpha = 1`` (no evidence) and in
        ``(0, 1]`` whenever ``alpha >= 1``, as an evidential head's ``evidence + 1`` is.

    Raises:
        ValueError: not ``[n, c, ...]``, or a non-positive or non-finite parameter.
    """
    alpha = _check_alpha(alpha)
    return alpha.shape[1] / alpha.sum(axis=1)


def dirichlet_mutual_information(alpha: np.ndarray) -> np.ndarray:
    """Mutual information between the label and the categorical parameters under
    ``Dir(alpha)``: the Dirichlet's epistemic (distributional) uncertainty.

    Args:
        alpha: ``[n, c, ...]`` Dirichlet parameters, all > 0.

    Returns:
        ``[n, ...]`` in ``[0, log c]`` (tiny negative rounding clipped to 0).

    Raises:
        ValueError: not ``[n, c, ...]``, or a non-positive or non-finite parameter.

    References:
        Malinin and Gales, NeurIPS 2018 (closed form of ``I[y, pi | x]`` for a Dirichlet).
    """
    alpha = _check_alpha(alpha)
    strength = alpha.sum(axis=1, keepdims=True)
    mean = alpha / strength
    terms = mean * (np.log(mean) - digamma(alpha + 1.0) + digamma(strength + 1.0))
    return np.maximum(-terms.sum(axis=1), 0.0)
