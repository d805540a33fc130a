"""Evidential deep learning (Sensoy et al. 2018): a Dirichlet head and its loss.

A classifier trained with ``--evidential`` keeps its architecture (``logits = fc(h)``); its
logits are read as evidence for a Dirichlet over the class probabilities:

- evidence ``e = softplus(logits)`` (>= 0), ``alpha = e + 1``, strength ``S = sum_k alpha_k``;
- class probabilities: the Dirichlet mean ``alpha / S`` (what metrics and every other
  strategy see as ``"probas"``); the strategies ``evidential`` / ``evidential_epistemic``
  read ``alpha`` itself (field ``"dirichlet_alpha"``, :mod:`medactive.scoring.evidential`).

The evidence function: the paper uses ReLU. We use softplus, a common variant, because a ReLU
unit whose logit is negative gives zero evidence *and* zero gradient, so a class can stop
learning for good (frequent with few labels and the KL term pushing evidence down), while
softplus keeps a gradient everywhere; ``exp`` (the other common variant) overflows float32
beyond logits of ~88 and makes ``S`` explode on confident inputs.

Loss (per sample, with one-hot ``y`` and ``p = alpha / S``), Sensoy et al. Eq. 5 plus the
annealed regulariser:

    L = sum_k [(y_k - p_k)^2 + p_k (1 - p_k) / (S + 1)]
        + lambda_t * KL[Dir(pi | alpha~) || Dir(pi | 1)],   alpha~ = y + (1 - y) * alpha,

    KL = log Gamma(S~) - log Gamma(K) - sum_k log Gamma(alpha~_k)
         + sum_k (alpha~_k - 1) (psi(alpha~_k) - psi(S~)),

``lambda_t = min(1, t / 10)`` at epoch ``t`` (0-based, so the first epoch has no KL term). The
regulariser removes only the misleading (non-target) evidence. Deviation from the paper: the
batch loss is the mean over samples (the paper sums), so learning rates stay those of the
cross-entropy recipes. Frozen heads train by steps: their epoch ``t`` is the number of full
passes over the labelled embeddings done so far.

References:
    Sensoy, Kaplan and Kandemir, "Evidential deep learning to quantify classification
    uncertainty", NeurIPS 2018.

Example:
    >>> import torch
    >>> logits = torch.log(torch.expm1(torch.tensor([[2.0, 1.0]])))  # evidence (2, 1)
    >>> dirichlet_alpha(logits).tolist()
    [[3.0, 2.0]]
    >>> round(float(evidential_loss(logits, torch.tensor([0]), epoch=0)), 4)  # Eq. 5 alone
    0.4
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from medactive.data.tensors import model_inputs
from medactive.errors import ConfigError

#: epochs over which the KL coefficient rises linearly to 1 (the paper's 10)
ANNEALING_EPOCHS = 10


def evidence(logits: torch.Tensor) -> torch.Tensor:
    """Non-negative evidence ``softplus(logits)`` ``[n, c]`` (see the module doc for why not
    ReLU)."""
    return F.softplus(logits)


def dirichlet_alpha(logits: torch.Tensor) -> torch.Tensor:
    """Dirichlet parameters ``alpha = evidence + 1`` ``[n, c]`` (all >= 1)."""
    return evidence(logits) + 1.0


def expected_probas(logits: torch.Tensor) -> torch.Tensor:
    """The Dirichlet mean ``alpha / S`` ``[n, c]``: an evidential model's class
    probabilities."""
    alpha = dirichlet_alpha(logits)
    return alpha / alpha.sum(dim=1, keepdim=True)


def annealing_coefficient(epoch: float, annealing_epochs: int = ANNEALING_EPOCHS) -> float:
    """``min(1, epoch / annealing_epochs)``: the KL term's weight at (0-based) ``epoch``."""
    return min(1.0, float(epoch) / annealing_epochs)


def mse_bayes_risk(alpha: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sensoy et al. Eq. 5 per sample ``[n]``: squared error of ``p = alpha / S`` to the one-hot
    ``targets`` ``[n, c]`` plus the Dirichlet variance ``p (1 - p) / (S + 1)``, summed over
    classes."""
    strength = alpha.sum(dim=1, keepdim=True)
    p = alpha / strength
    return ((targets - p) ** 2 + p * (1.0 - p) / (strength + 1.0)).sum(dim=1)


def kl_to_uniform(alpha: torch.Tensor) -> torch.Tensor:
    """``KL[Dir(alpha) || Dir(1, ..., 1)]`` per row ``[n]`` of ``alpha`` ``[n, c]``."""
    k = alpha.shape[1]
    strength = alpha.sum(dim=1)
    return (torch.lgamma(strength) - math.lgamma(k)
            - torch.lgamma(alpha).sum(dim=1)
            + ((alpha - 1.0) * (torch.digamma(alpha)
                                - torch.digamma(strength)[:, None])).sum(dim=1))


def evidential_loss(logits: torch.Tensor, labels: torch.Tensor, *, epoch: float,
                    annealing_epochs: int = ANNEALING_EPOCHS) -> torch.Tensor:
    """The batch-mean evidential loss of ``logits`` ``[n, c]`` for integer ``labels`` ``[n]``
    at ``epoch``: Eq. 5 plus ``min(1, epoch / 10)`` times the KL of the misleading evidence
    (module doc)."""
    alpha = dirichlet_alpha(logits)
    targets = F.one_hot(labels.long(), alpha.shape[1]).to(alpha.dtype)
    loss = mse_bayes_risk(alpha, targets)
    weight = annealing_coefficient(epoch, annealing_epochs)
    if weight > 0:
        loss = loss + weight * kl_to_uniform(targets + (1.0 - targets) * alpha)
    return loss.mean()


def check_evidential(value, *, source: str = "train option evidential") -> bool:
    """``value`` if it is a bool, else one ConfigError naming ``source``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{source} must be true or false, got {value!r}")
    return bool(value)


#: the one line for an evidential query on a model trained without the evidential loss
NEEDS_FLAG = ("evidential / evidential_epistemic need --evidential (train option evidential = "
              "true): the round's model must be trained with the evidential loss")


def dirichlet_alpha_provider(model, *, features: np.ndarray | None = None, split=None,
                             image_size: int | None = None, batch_size: int = 512,
                             device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """The ``"dirichlet_alpha"`` field's provider: ``idx [n] -> [n, c]`` float64 Dirichlet
    parameters of pool rows ``idx``, from ``features`` (frozen mode: the standardised
    embeddings ``[n_pool, d]``) or else the images of ``split`` (resized to ``image_size``).

    Asking it for values of a model not trained with the evidential loss (``model.evidential``
    false) raises :class:`ConfigError` (:data:`NEEDS_FLAG`); building it never does.
    """

    def provide(idx: np.ndarray) -> np.ndarray:
        if not getattr(model, "evidential", False):
            raise ConfigError(NEEDS_FLAG)
        idx = np.asarray(idx, dtype=np.int64)
        model.eval()
        on = next(model.parameters()).device if features is not None else device
        out = []
        with torch.no_grad():
            for _, x in model_inputs(idx, features=features, split=split,
                                     image_size=image_size, batch_size=batch_size):
                logits = model.fc(model.features(x.to(on)))
                out.append(dirichlet_alpha(logits).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, model.fc.out_features))

    return provide
