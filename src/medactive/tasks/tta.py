"""Test-time augmentation stacks: the ``"tta_probas"`` field behind the ``tta_kl`` strategy.

Data disagreement (survey §3.1.1): each pool sample is predicted under ``T`` random
augmentations and the predictions are stacked on a last axis, ``[n, c, T]`` for
classification, ``[n, c, H, W, T]`` for segmentation; the strategy then scores how far they
drift apart (:func:`medactive.scoring.augmentation.tta_kl`).

- Classification (:func:`classification_tta`): label-preserving transforms of the kind training
  uses (:mod:`medactive.tasks.classification.augment`), kept mild: a random horizontal flip,
  a rotation of at most ±10° (bilinear, reflected border) and brightness and contrast within
  ±10%. The same function serves both training modes through a ``forward`` callable: the
  fine-tuned CNN, or (frozen mode) the fixed encoder applied to the augmented images followed
  by the pool's standardisation and the trained head (:func:`frozen_forward`), so the head sees
  the embeddings of the augmented images, not noise added to fixed features.
- Segmentation (:func:`segmentation_tta`): only the transforms that are exactly invertible on a
  pixel grid, the eight flips and 90° rotations (the dihedral group; the survey's segmentation
  recipe trains with flips and 90° rotations). Each view's prediction is mapped back to the
  original frame by the inverse transform, so the members of a stack compare the same pixels.
  A sample's views are a random ordering of the group's eight elements (cycled when
  ``T > 8``), so with the default ``T = 8`` every element is used once; non-square inputs use
  the four elements that keep the shape (identity, both flips, 180°).

Randomness: sample ``i``'s views come from a generator seeded with
``derive_seed(seed, "tta", i)`` (``i`` the pool index), so a sample's stack is the same however
the pool is chunked into batches, and differs between rounds (the task passes the round's
prediction seed).

References:
    Wu et al., "COVID-AL: The diagnosis of COVID-19 with deep active learning", Medical Image
    Analysis 68, 101913, 2021 (KL between augmented versions); Lyu et al., "Box-level active
    detection", CVPR 2023 (input-end committee); survey §3.1.1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from medactive._random import derive_seed
from medactive.errors import ConfigError
from medactive.progress import progress_bar

#: default number of augmentations ``T`` per sample
DEFAULT_N_AUGMENTATIONS = 8
#: classification: largest rotation (radians) and brightness / contrast change
MAX_ROTATION = math.radians(10.0)
MAX_INTENSITY = 0.1
#: segmentation: the dihedral group as (quarter turns k, horizontal flip first)
DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))
#: the elements that keep a non-square image's shape
_SHAPE_KEEPING = ((0, False), (2, False), (0, True), (2, True))


def check_n_augmentations(n_augmentations: int) -> int:
    """``n_augmentations`` as an int ``>= 2``.

    Raises:
        ConfigError: not an integer, or below 2 (one view cannot disagree with itself).
    """
    if isinstance(n_augmentations, bool) or not isinstance(n_augmentations, (int, np.integer)) \
            or n_augmentations < 2:
        raise ConfigError(f"n_augmentations must be an integer >= 2, got {n_augmentations!r}")
    return int(n_augmentations)


def sample_generator(seed: int, pool_index: int) -> torch.Generator:
    """The generator of pool sample ``pool_index``'s views (independent of the batching)."""
    return torch.Generator().manual_seed(derive_seed(seed, "tta", int(pool_index)))


# -- classification ---------------------------------------------------------------------------
def classification_views(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Apply per-row augmentation parameters to images ``x`` ``[m, C, H, W]`` in [0, 1].

    Args:
        x: images, values in [0, 1].
        params: ``[m, 4]`` rows ``(flip, angle, brightness, contrast)``: ``flip`` in {0, 1}
            (horizontal), ``angle`` in radians, ``brightness`` and ``contrast`` factors around 1.

    Returns:
        ``[m, C, H, W]`` augmented images, clamped to [0, 1]; all-identity parameters
        ``(0, 0, 1, 1)`` return ``x`` unchanged.
    """
    params = params.to(x)
    flip = params[:, 0] > 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    angle = params[:, 1]
    if bool((angle != 0).any()):
        cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1),
                             torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                          align_corners=False)
    brightness = params[:, 2, None, None, None]
    contrast = params[:, 3, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean * brightness).clamp(0.0, 1.0)


def classification_params(seed: int, pool_idx: np.ndarray, n_augmentations: int, *,
                          max_rotation: float = MAX_ROTATION,
                          max_intensity: float = MAX_INTENSITY) -> torch.Tensor:
    """``[len(pool_idx) * T, 4]`` view parameters, ``T`` rows per sample in order, each
    sample's from its own generator (:func:`sample_generator`): a fair coin for the flip, the
    angle uniform in ``±max_rotation``, brightness and contrast uniform in
    ``1 ± max_intensity``."""
    rows = []
    for i in np.asarray(pool_idx, dtype=np.int64).tolist():
        u = torch.rand(n_augmentations, 4, generator=sample_generator(seed, i))
        rows.append(torch.stack([(u[:, 0] < 0.5).float(),
                                 (2 * u[:, 1] - 1) * max_rotation,
                                 1 + (2 * u[:, 2] - 1) * max_intensity,
                                 1 + (2 * u[:, 3] - 1) * max_intensity], 1))
    return torch.cat(rows) if rows else torch.zeros(0, 4)


@torch.no_grad()
def classification_tta(forward: Callable[[torch.Tensor], torch.Tensor],
                       images: Callable[[np.ndarray], torch.Tensor], idx: np.ndarray, *,
                       n_augmentations: int, seed: int, n_classes: int, batch_size: int = 512,
                       device: str | torch.device = "cpu", max_rotation: float = MAX_ROTATION,
                       max_intensity: float = MAX_INTENSITY, progress: bool = False,
                       desc: str = "scoring the pool (test-time augmentation)") -> np.ndarray:
    """Class probabilities ``[n, c, T]`` on ``T`` random augmentations of each sample.

    Args:
        forward: medactive-normalised images ``[m, C, H, W]`` (on ``device``) -> class
            probabilities ``[m, c]`` (the model in eval mode).
        images: pool indices -> images ``[b, C, H, W]`` in [0, 1] (CPU), e.g.
            :func:`medactive.data.tensors.load_images` at the model's input size.
        idx: ``[n]`` pool-absolute indices.
        n_augmentations: views ``T`` per sample.
        seed: the round's prediction seed (each sample's stream is derived from it).
        n_classes: ``c`` (the shape of an empty result).
        batch_size: images per forward pass (``batch_size // T`` samples, at least one).
        device: where ``forward`` runs.
        max_rotation: largest rotation in radians (0: flips and intensity only).
        max_intensity: largest relative brightness / contrast change (0: none).
        progress: report the samples done (:mod:`medactive.progress`).
        desc: the progress label.

    Returns:
        ``[n, c, T]`` float64 probabilities.
    """
    from medactive.data.tensors import normalise_batch

    t = check_n_augmentations(n_augmentations)
    idx = np.asarray(idx, dtype=np.int64)
    per_batch = max(1, int(batch_size) // t)
    out = np.empty((idx.size, n_classes, t), dtype=np.float64)
    bar = progress_bar(idx.size, desc=desc, unit="image", enabled=progress and idx.size > per_batch)
    try:
        for start in range(0, idx.size, per_batch):
            rows = idx[start:start + per_batch]
            x = images(rows).repeat_interleave(t, dim=0)  # sample-major: [b * T, C, H, W]
            params = classification_params(seed, rows, t, max_rotation=max_rotation,
                                           max_intensity=max_intensity)
            views = classification_views(x, params)
            p = forward(normalise_batch(views).to(device)).double().cpu().numpy()
            out[start:start + rows.size] = p.reshape(rows.size, t, -1).transpose(0, 2, 1)
            bar.update(rows.size)
    finally:
        bar.close()
    return out


def frozen_forward(encoder_backbone: torch.nn.Module, standardise: Callable[[np.ndarray],
                   np.ndarray], head: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Frozen mode's ``forward`` for :func:`classification_tta`: encoder on the augmented
    images, the pool's standardisation, then the trained head's softmax (head on the CPU)."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        feats = encoder_backbone.eval()(x).float().cpu().numpy()
        h = torch.as_tensor(np.ascontiguousarray(standardise(feats), dtype=np.float32))
        head.eval()
        return torch.softmax(head.fc(head.features(h)), dim=1)

    return forward


# -- segmentation -----------------------------------------------------------------------------
def dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Flip horizontally (if ``flip``), then rotate by ``k`` quarter turns, the last two axes."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, dims=(-2, -1)) if k % 4 else x


def dihedral_inverse(y: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """The inverse of :func:`dihedral`: ``dihedral_inverse(dihedral(x, k, f), k, f) == x``."""
    if k % 4:
        y = torch.rot90(y, -k, dims=(-2, -1))
    return y.flip(-1) if flip else y


def segmentation_elements(seed: int, pool_idx: np.ndarray, n_augmentations: int,
                          square: bool = True) -> np.ndarray:
    """``[n, T]`` indices into the group (:data:`DIHEDRAL`, or the four shape-keeping
    elements when not ``square``): per sample a random ordering of the group, cycled."""
    size = len(DIHEDRAL) if square else len(_SHAPE_KEEPING)
    reps = -(-n_augmentations // size)
    out = np.empty((len(pool_idx), n_augmentations), dtype=np.int64)
    for row, i in enumerate(np.asarray(pool_idx, dtype=np.int64).tolist()):
        gen = sample_generator(seed, i)
        order = torch.cat([torch.randperm(size, generator=gen) for _ in range(reps)])
        out[row] = order[:n_augmentations].numpy()
    return out


@torch.no_grad()
def segmentation_tta(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     pool_idx: np.ndarray, *, n_augmentations: int, seed: int) -> np.ndarray:
    """Softmax maps ``[b, c, H, W, T]`` of ``net`` on ``T`` flips / 90° rotations of slices
    ``x`` ``[b, C, H, W]``, each mapped back to the original frame.

    Args:
        net: ``[m, C, H, W]`` -> logits ``[m, c, H, W]`` (in eval mode).
        x: the slices, on the network's device.
        pool_idx: ``[b]`` their pool indices (seed each sample's choice of views).
        n_augmentations: views ``T``.
        seed: the round's prediction seed.

    Returns:
        ``[b, c, H, W, T]`` float32 probabilities in the frame of ``x``.
    """
    t = check_n_augmentations(n_augmentations)
    square = x.shape[-1] == x.shape[-2]
    group = DIHEDRAL if square else _SHAPE_KEEPING
    elements = segmentation_elements(seed, pool_idx, t, square)
    out: np.ndarray | None = None
    for g, (k, flip) in enumerate(group):
        rows, views = np.nonzero(elements == g)
        if rows.size == 0:
            continue
        logits = net(dihedral(x[torch.as_tensor(rows, device=x.device)], k, flip))
        probas = dihedral_inverse(torch.softmax(logits, dim=1), k, flip).float().cpu().numpy()
        if out is None:
            out = np.empty((x.shape[0], *probas.shape[1:], t), dtype=np.float32)
        out[rows, ..., views] = probas
    if out is None:  # an empty batch
        raise ValueError("segmentation_tta needs at least one slice")
    return out


# -- the classification task's provider -------------------------------------------------------
def classification_provider(task, model: torch.nn.Module, *, seed: int,
                            n_augmentations: Callable[[], int],
                            ) -> Callable[[np.ndarray], np.ndarray]:
    """The ``"tta_probas"`` provider of a
    :class:`~medactive.tasks.classification.task.ClassificationTask` for round model ``model``.

    Finetune mode: the CNN on augmented images at the preset's input size. Frozen mode: the
    task's encoder embeds the augmented images (at the data's size; the encoder adapts them),
    the pool's standardisation is applied and the head ``model`` gives the probabilities.

    Args:
        task: the classification task.
        model: the round's classifier (finetune) or head (frozen).
        seed: the round's prediction seed.
        n_augmentations: returns ``T`` when the field is computed (the predictions'
            ``n_augmentations``, which the cycle sets from the strategy's option).
    """
    from medactive.data.tensors import load_images

    train, cfg = task.dataset.train, task.config
    frozen = task.train_mode == "frozen"

    def provider(idx: np.ndarray) -> np.ndarray:
        size, net_device = cfg.image_size, task.device
        if frozen:
            task.embeddings("train")  # fits the pool's standardiser on first use
            backbone = task.encoder.backbone.to(task.device)
            forward = frozen_forward(backbone, task._standardiser, model)
            size = None
        else:
            model.eval()

            def forward(x: torch.Tensor) -> torch.Tensor:
                return torch.softmax(model.fc(model.features(x)), dim=1)
        try:
            return classification_tta(
                forward, lambda rows: load_images(train, rows, size), idx,
                n_augmentations=n_augmentations(), seed=seed, n_classes=task.dataset.n_classes,
                batch_size=cfg.inference_batch_size, device=net_device,
                progress=task.scoring_progress)
        finally:
            if frozen:
                task.encoder.backbone.to("cpu")

    return provider
