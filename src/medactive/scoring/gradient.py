"""Gradient-based uncertainty: last-layer gradient lengths without labels (survey §3.1.2).

For a linear last layer ``z = W h + b`` (``W`` ``[c, d]``, softmax ``p = softmax(z)``) the
gradient of any loss ``L(z)`` w.r.t. ``(W, b)`` is ``g ⊗ h`` and ``g``, with ``g = ∂L/∂z``
``[c]``, so its Frobenius norm factorises: ``||∂L/∂(W, b)|| = ||g|| · sqrt(||h||² + 1)``
(``sqrt(||h||²)`` without a bias). These functions take the two factors' inputs, class
probabilities ``[n, c]`` and the last layer's input ``[n, d]``, and never build the
``n × (c·d)`` gradients (as BADGE's :class:`~medactive.selection.embedding.FactorisedEmbedding`).

- :func:`expected_gradient_length`, Settles et al.'s EGL: the expected length under the
  model's own predictive distribution, ``Σ_y p_y ||∇ CE(x, y)||`` with ``∂CE(y)/∂z = p − e_y``
  (survey Eq. 5's expected loss, label-free). The norm is taken inside the expectation: the
  gradient of the expected loss itself vanishes at the last layer when ``p`` is held fixed,
  since ``Σ_y p_y (p − e_y) = 0``.
- :func:`entropy_gradient_length`: the length of the gradient of the prediction entropy
  ``H(p) = −Σ_i p_i log p_i`` (survey Eq. 6, Wang et al. 2022b), through the softmax:
  ``∂H/∂z_j = −p_j (log p_j + H)``.

Higher always means more informative. Classification only: ``probas`` must be ``[n, c]``.

References:
    Settles, Craven and Ray, "Multiple-instance active learning", NeurIPS 2008 (expected
    gradient length). Huang et al., "Active learning for speech recognition: the power of
    gradients", arXiv:1612.03226, 2016 (EGL for deep networks). Wang et al., "Boosting
    active learning via improving test performance", AAAI 2022 (entropy-loss gradient norm).

Example:
    >>> import numpy as np
    >>> p = np.array([[1.0, 0.0], [0.5, 0.5]])
    >>> h = np.array([[3.0, 4.0], [3.0, 4.0]])
    >>> expected_gradient_length(p, h, bias=False).round(4).tolist()
    [0.0, 3.5355]
"""

from __future__ import annotations

import numpy as np

from medactive._validation import check_probas


def _check(probas: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probas = check_probas(probas)
    if probas.ndim != 2:
        raise ValueError(f"gradient lengths need class probabilities [n, c] (classification), "
                         f"got shape {probas.shape}")
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] != probas.shape[0]:
        raise ValueError(f"features must be [n, d] with n = {probas.shape[0]} rows (the last "
                         f"layer's input), got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values")
    return np.asarray(probas, dtype=np.float64), features


def _input_norm(features: np.ndarray, bias: bool) -> np.ndarray:
    """``||(h, 1)||`` with a bias (its input is the constant 1), else ``||h||``: ``[n]``."""
    return np.sqrt(np.einsum("nd,nd->n", features, features) + (1.0 if bias else 0.0))


def expected_gradient_length(probas: np.ndarray, features: np.ndarray, *, bias: bool = True,
                             ) -> np.ndarray:
    """EGL ``Σ_y p_y ||∇_{W,b} CE(x, y)||`` of the last linear layer.

    ``||∇ CE(y)|| = ||p − e_y|| · ||(h, 1)||`` and ``||p − e_y||² = ||p||² − 2 p_y + 1``, so
    the score costs ``O(n (c + d))``.

    Args:
        probas: ``[n, c]`` softmax outputs.
        features: ``[n, d]`` the last layer's input ``h`` (the ``"embeddings"`` field).
        bias: the layer has a bias (its gradient ``p − e_y`` joins the norm).

    Returns:
        ``[n]`` scores ``>= 0``; 0 for a one-hot prediction.
    """
    p, h = _check(probas, features)
    sq = np.einsum("nc,nc->n", p, p)[:, None] - 2.0 * p + 1.0
    per_class = np.sqrt(np.maximum(sq, 0.0))  # ||p - e_y|| [n, c]
    return np.einsum("nc,nc->n", p, per_class) * _input_norm(h, bias)


def entropy_gradient_length(probas: np.ndarray, features: np.ndarray, *, bias: bool = True,
                            ) -> np.ndarray:
    """``||∇_{W,b} H(softmax(W h + b))||``, the entropy loss's last-layer gradient length.

    Args:
        probas: ``[n, c]`` softmax outputs.
        features: ``[n, d]`` the last layer's input ``h``.
        bias: the layer has a bias.

    Returns:
        ``[n]`` scores ``>= 0``; 0 for a one-hot or a uniform prediction (both are stationary
        points of the entropy).
    """
    p, h = _check(probas, features)
    plogp = np.zeros_like(p)
    np.multiply(p, np.log(p, where=p > 0, out=np.zeros_like(p)), out=plogp, where=p > 0)
    ent = -plogp.sum(axis=1, keepdims=True)
    grad = -(plogp + p * ent)  # ∂H/∂z [n, c]
    return np.linalg.norm(grad, axis=1) * _input_norm(h, bias)
