"""Adversarial uncertainty (survey §3.1.5): DeepFool distances behind the ``dfal`` strategy.

DFAL (Ducoffe & Precioso 2018) queries the unlabeled samples closest to the decision boundary,
measuring the distance by the norm of the smallest perturbation that changes the prediction,
as DeepFool (Moosavi-Dezfooli et al. 2016, Algorithm 2, multi-class) finds it. DeepFool
linearises the classifier around the current point ``x_i`` and steps to the nearest linearised
boundary: with ``k̂`` the original prediction, ``f'_k = f_k(x_i) − f_k̂(x_i)`` and
``w'_k = ∇f_k(x_i) − ∇f_k̂(x_i)``, it picks ``l = argmin_{k≠k̂} |f'_k| / ||w'_k||``, adds
``r_i = |f'_l| / ||w'_l||² · w'_l`` to the total ``r``, and evaluates at
``x_0 + (1 + overshoot) · r`` until the prediction changes (or ``max_iter`` steps). The distance
is ``||(1 + overshoot) · r||₂``, the perturbation actually applied; for an affine classifier it
is ``(1 + overshoot)`` times the exact distance to the nearest boundary, found in one step.

The task computes it beside the model and hands it to the strategy as the prediction field
``"dfal_distance"`` ``[n]``: on the head over the standardised encoder features in frozen mode
(:func:`head_dfal_distances`), on the CNN over the images in [0, 1] (before the networks'
[-1, 1] normalisation, after the preset's resize; :func:`image_dfal_distances`) in finetune
mode. As in the original DeepFool code the perturbed image is not clipped to [0, 1].
Deterministic: no randomness, and each sample's distance does not depend on the batch it is in
(eval mode; a network whose outputs couple the samples of a batch would break that).

Differences from the paper: DFAL also adds each queried sample's adversarial twin to the
labeled set with the oracle's label; here only the query is made (the cycle trains on oracle
labels only).

References:
    Ducoffe and Precioso, "Adversarial active learning for deep networks: a margin based
    approach", arXiv:1802.09841, 2018. Moosavi-Dezfooli, Fawzi and Frossard, "DeepFool: a
    simple and accurate method to fool deep neural networks", CVPR 2016.

Example:
    >>> import torch
    >>> w = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # boundary x_0 = 0
    >>> d = deepfool_distances(lambda x: x @ w.T, torch.tensor([[0.5, 3.0]]), overshoot=0.0)
    >>> round(float(d[0]), 6)
    0.5
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from medactive.data.tensors import load_images, normalise_batch
from medactive.progress import progress_bar

logger = logging.getLogger(__name__)

#: DFAL's and DeepFool's defaults
OVERSHOOT, MAX_ITER = 0.02, 50
#: float elements of the per-class input gradients ``[b, c, *input]`` held at once
_GRAD_ELEMENTS = 1 << 25


@torch.no_grad()
def deepfool_distances(logits_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *,
                       overshoot: float = OVERSHOOT, max_iter: int = MAX_ITER) -> np.ndarray:
    """DeepFool perturbation norms ``[n]`` of one batch.

    Args:
        logits_fn: ``[b, *input] -> [b, c]`` logits (or any scores whose argmax is the
            prediction), differentiable in its input; samples must not interact.
        x: ``[n, *input]`` inputs.
        overshoot: the step is scaled by ``1 + overshoot`` to cross the boundary (> 0, or a
            point landing exactly on a linear boundary may not flip).
        max_iter: DeepFool steps at most; a sample still unflipped gets the norm reached so far
            (a lower bound, logged).

    Returns:
        ``[n]`` float64 L2 norms of the applied perturbation: 0 for a sample on a boundary (a
        tie in its top logits), ``inf`` where no class's gradient differs from the
        prediction's (nothing can move it).

    Raises:
        ValueError: ``overshoot < 0`` or ``max_iter < 1``.
    """
    if not overshoot >= 0:
        raise ValueError(f"overshoot must be >= 0, got {overshoot!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    x0 = x.detach()
    n = x0.shape[0]
    distance = np.full(n, np.nan)
    if n == 0:
        return distance
    label = logits_fn(x0).argmax(dim=1)
    r_tot = torch.zeros_like(x0)
    active = torch.arange(n, device=x0.device)  # samples still searching
    scale = 1.0 + overshoot
    for step in range(max_iter + 1):
        xi = (x0[active] + scale * r_tot[active]).requires_grad_(True)
        with torch.enable_grad():
            z = logits_fn(xi)
        own = label[active]
        flipped = (z.detach().argmax(dim=1) != own).cpu().numpy()
        norms = (scale * r_tot[active]).flatten(1).norm(dim=1).double().cpu().numpy()
        where = active.cpu().numpy()
        if step == max_iter:
            if not flipped.all():
                logger.info("DeepFool: %d sample(s) kept their prediction after %d steps; "
                            "their distance is the norm reached", int((~flipped).sum()),
                            max_iter)
            distance[where] = norms
            break
        distance[where[flipped]] = norms[flipped]
        if flipped.all():
            break
        with torch.enable_grad():  # one backward pass per class: the samples are independent
            c = z.shape[1]
            grads = torch.stack([torch.autograd.grad(z[:, k].sum(), xi, retain_graph=k < c - 1)[0]
                                 for k in range(c)], dim=1)  # [m, c, *input]
        rows = torch.arange(active.numel(), device=x0.device)
        f = z.detach()
        f_diff = (f - f[rows, own][:, None]).abs()  # |f'_k| [m, c]
        w_diff = grads - grads[rows, own][:, None]  # w'_k [m, c, *input]
        w_norm = w_diff.flatten(2).norm(dim=2)
        ratio = torch.where(w_norm > 0, f_diff / w_norm, torch.full_like(w_norm, np.inf))
        ratio[rows, own] = np.inf
        pert, nearest = ratio.min(dim=1)
        pert_np = pert.double().cpu().numpy()
        keep = ~flipped
        on_boundary, stuck = keep & (pert_np == 0), keep & np.isinf(pert_np)
        distance[where[on_boundary]] = norms[on_boundary]
        distance[where[stuck]] = np.inf
        go = torch.as_tensor(keep & ~on_boundary & ~stuck, device=x0.device)
        if not bool(go.any()):
            break
        w_l = w_diff[rows[go], nearest[go]]
        length = (pert[go] / w_norm[rows[go], nearest[go]]).reshape(-1, *[1] * (w_l.ndim - 1))
        r_tot[active[go]] += length * w_l  # r_i = |f'_l| / ||w'_l||^2 w'_l
        active = active[go]
    return distance


def _batched(logits_fn: Callable[[torch.Tensor], torch.Tensor],
             load: Callable[[np.ndarray], torch.Tensor], n: int, *, n_classes: int,
             batch_size: int, overshoot: float, max_iter: int, progress: bool, desc: str,
             ) -> np.ndarray:
    out = np.empty(n, dtype=np.float64)
    first = load(np.arange(min(1, n)))
    per_sample = max(1, n_classes * int(np.prod(first.shape[1:])))
    batch = max(1, min(batch_size, _GRAD_ELEMENTS // per_sample))
    bar = progress_bar(n, desc=desc, unit="sample", enabled=progress and n > batch)
    for start in range(0, n, batch):
        rows = np.arange(start, min(n, start + batch))
        out[rows] = deepfool_distances(logits_fn, load(rows), overshoot=overshoot,
                                       max_iter=max_iter)
        bar.update(rows.size)
    bar.close()
    return out


def head_dfal_distances(model, features: np.ndarray, *, batch_size: int = 1024,
                        overshoot: float = OVERSHOOT, max_iter: int = MAX_ITER,
                        progress: bool = False) -> np.ndarray:
    """Frozen mode: DeepFool distances ``[n]`` of a head (a ``Classifier`` on embeddings) over
    the (standardised) features ``[n, d]`` it was trained on, on the CPU as the heads are."""
    model.eval()
    feats = np.ascontiguousarray(features, dtype=np.float32)
    return _batched(lambda x: model.fc(model.features(x)),
                    lambda rows: torch.as_tensor(feats[rows]), len(feats),
                    n_classes=model.fc.out_features, batch_size=batch_size,
                    overshoot=overshoot, max_iter=max_iter, progress=progress,
                    desc="scoring the pool (DeepFool)")


def image_dfal_distances(model, split, idx: np.ndarray, *, image_size: int | None,
                         batch_size: int = 256, device: str = "cpu",
                         overshoot: float = OVERSHOOT, max_iter: int = MAX_ITER,
                         progress: bool = False) -> np.ndarray:
    """Finetune mode: DeepFool distances ``[n]`` of a CNN ``Classifier`` over the images
    ``idx`` of ``split`` in [0, 1] (resized to ``image_size`` as for prediction)."""
    model.eval()
    idx = np.asarray(idx, dtype=np.int64)
    return _batched(lambda x: model.fc(model.features(normalise_batch(x))),
                    lambda rows: load_images(split, idx[rows], image_size).to(device), idx.size,
                    n_classes=model.fc.out_features, batch_size=batch_size,
                    overshoot=overshoot, max_iter=max_iter, progress=progress,
                    desc="scoring the pool (DeepFool)")


def dfal_provider(model, *, features: np.ndarray | None, split, image_size: int | None,
                  batch_size: int, device: str, progress: bool = False,
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """The classification task's ``"dfal_distance"`` provider: ``idx -> [n]`` distances.

    Args:
        model: the round's ``Classifier`` (a head in frozen mode).
        features: frozen mode: the standardised pool embeddings ``[n_pool, d]`` the head works
            on; ``None``: finetune mode, DeepFool on the CNN over ``split``'s images.
        split: the pool's split (finetune mode).
        image_size, batch_size, device: as for prediction (:func:`~medactive.tasks.
            classification.train.predict`); heads run on the CPU.
        progress: report the pool's scoring.
    """
    def provide(idx: np.ndarray) -> np.ndarray:
        if features is not None:
            return head_dfal_distances(model, features[idx], progress=progress)
        return image_dfal_distances(model, split, idx, image_size=image_size,
                                    batch_size=batch_size, device=device, progress=progress)

    return provide
