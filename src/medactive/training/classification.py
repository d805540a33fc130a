"""Train and run a classifier on pool indices (device placement and I/O live here).

``fit_classifier`` follows the survey recipe given by a :class:`TrainConfig` (SGD + Nesterov,
cosine decay, cross-entropy) and keeps the checkpoint with the best validation metric, as the
survey does. Everything random (initialisation, batch order, augmentation, MC masks) draws from
generators seeded by the caller, so a seed gives the same model on the same machine.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from medactive.data.pool import Split
from medactive.models.classification import Classifier, build_classifier
from medactive.training.augment import augment_batch
from medactive.training.presets import TrainConfig

logger = logging.getLogger(__name__)


def load_images(split: Split, idx: np.ndarray, image_size: int | None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Images ``idx`` of ``split`` as a float tensor ``[n, C, H, W]`` in [0, 1]."""
    if isinstance(split.images, np.ndarray):
        arr = split.images[idx]
    else:
        arr = np.stack([np.asarray(split.images[int(i)]) for i in idx])
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    if arr.dtype == np.uint8:
        x = x / 255.0
    if image_size is not None and tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                          antialias=True)
    return x.to(device)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.5


def optimisation_step(loss: torch.Tensor, optimiser, scheduler, *, what: str,
                      epoch: int) -> float:
    """One optimiser and scheduler step on ``loss``; returns its value.

    Raises:
        FloatingPointError: the loss is NaN or infinite (naming ``what`` and the epoch).
    """
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{what} loss became {loss.item()} at epoch {epoch}; "
                                 "lower the learning rate")
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    scheduler.step()
    return loss.item()


def fit_classifier(train: Split, labeled_idx: np.ndarray, labels: np.ndarray, *,
                   config: TrainConfig, n_classes: int, in_channels: int, seed: int,
                   validate: Callable[[Classifier], float] | None = None,
                   init_model: Classifier | None = None,
                   init_backbone: dict[str, torch.Tensor] | None = None, device: str = "cpu",
                   progress: bool = False) -> Classifier:
    """Train a classifier on ``labeled_idx`` of ``train`` with ``labels``.

    Args:
        train: the pool split.
        labeled_idx: ``[n]`` pool indices to train on.
        labels: ``[n]`` their labels.
        config: the recipe.
        seed: seeds initialisation, batch order and augmentation.
        validate: ``model -> score`` (higher better); the best-scoring checkpoint is returned.
        init_model: start from this model's weights (fine-tuning) instead of a fresh one.
        init_backbone: a fresh model's backbone starts from this state dict (self-supervised
            pretraining, :mod:`medactive.training.self_supervised`); its head stays random.
            Ignored when ``init_model`` is given.

    Returns:
        The model in eval mode.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if init_model is not None:
        model = copy.deepcopy(init_model)
    else:
        model = build_classifier(config.model, in_channels=in_channels, n_classes=n_classes,
                                 width=config.width, dropout=config.dropout)
        if init_backbone is not None:
            model.backbone.load_state_dict(init_backbone)
    model.to(device)
    labels_t = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    n = len(labeled_idx)
    steps_per_epoch = max(1, -(-n // config.batch_size))
    optimiser = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser,
                                                           T_max=config.epochs * steps_per_epoch)
    in_memory = isinstance(train.images, np.ndarray) and n <= 20000
    cached = load_images(train, labeled_idx, config.image_size) if in_memory else None
    best_score, best_state = -np.inf, None
    epochs = tqdm(range(config.epochs), desc=f"train ({n} labels)", leave=False,
                  disable=not progress, unit="epoch")
    for epoch in epochs:
        model.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, config.batch_size):
            batch = order[start:start + config.batch_size]
            if len(batch) < 2 and n >= 2:  # batch norm needs two samples
                continue
            x = (cached[batch] if cached is not None
                 else load_images(train, labeled_idx[batch.numpy()], config.image_size))
            x = _normalise(augment_batch(x, config.augmentation, gen)).to(device)
            loss = F.cross_entropy(model(x), labels_t[batch].to(device))
            total += optimisation_step(loss, optimiser, scheduler, what="training",
                                       epoch=epoch) * len(batch)
        epochs.set_postfix(loss=f"{total / n:.3f}")
        last = epoch == config.epochs - 1
        if validate is not None and ((epoch + 1) % config.eval_every == 0 or last):
            model.eval()
            score = validate(model)
            if score > best_score or best_state is None:
                best_score = score
                best_state = copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model


@torch.no_grad()
def predict(model: Classifier, split: Split, idx: np.ndarray, *, image_size: int | None,
            batch_size: int = 512, device: str = "cpu", with_features: bool = False,
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities ``[n, c]`` (and features ``[n, d]``) of ``split`` rows ``idx``, batched."""
    model.eval()
    probas, feats = [], []
    for start in range(0, len(idx), batch_size):
        x = _normalise(load_images(split, idx[start:start + batch_size], image_size)).to(device)
        h = model.features(x)
        probas.append(torch.softmax(model.fc(h), dim=1).double().cpu().numpy())
        if with_features:
            feats.append(h.float().cpu().numpy())
    n_classes = model.fc.out_features
    p = np.concatenate(probas) if probas else np.zeros((0, n_classes))
    f = (np.concatenate(feats) if feats else np.zeros((0, model.fc.in_features))
         ) if with_features else None
    return p, f


@torch.no_grad()
def predict_mc(model: Classifier, split: Split, idx: np.ndarray, *, n_samples: int, seed: int,
               image_size: int | None, batch_size: int = 512, device: str = "cpu") -> np.ndarray:
    """MC-dropout probabilities ``[n, c, t]``: backbone once per batch, head ``t`` times."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(idx), batch_size):
        x = _normalise(load_images(split, idx[start:start + batch_size], image_size)).to(device)
        out.append(model.mc_head(model.features(x), n_samples, gen).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.fc.out_features, n_samples))
