"""Self-supervised pretraining of the classification backbone on the unlabeled pool: SimCLR,
and the training loop every method shares (:func:`pretrain_ssl`; SimSiam in
:mod:`medactive.encoders.simsiam`).

Survey §4.2: a contrastive model trained on the raw pool gives a better starting point for the
first rounds ("pretrain then fine-tune", §4.2.2) and features on which a cold-start strategy can
choose the initial set before any label exists (TypiClust, §4.2.1).

SimCLR: each image gives two random views (:func:`simclr_augment`: random resized crop,
horizontal flip, small rotation, brightness/contrast jitter); the backbone and a 2-layer
projection head map them to ``z``; :func:`nt_xent_loss` pulls the two views of an image
together and pushes the other ``2n - 2`` views of the batch away. Only the backbone is kept:
:func:`pretrain_simclr` returns its state dict, which loads into
:attr:`medactive.tasks.classification.model.Classifier.backbone` (the classifier head is not
pretrained). Optimiser: Adam (lr 1e-3, weight decay 1e-6), the usual choice of small-batch
SimCLR reimplementations (the paper's LARS is for batches of thousands).

The methods are a registry (:data:`SSL_METHODS`): each names a head built on the backbone's
features and a loss of that head on a batch of two views per image; :func:`pretrain_ssl` (views,
optimiser, schedule, checkpoints, progress) is the same for all.

References:
    Chen, Kornblith, Norouzi and Hinton, "A simple framework for contrastive learning of visual
    representations", ICML 2020.

Example:
    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> round(nt_xent_loss(z, z, temperature=0.5).item(), 4)
    0.2395
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medactive._optim import optimisation_step
from medactive.data.pool import Split
from medactive.data.tensors import load_images, normalise_batch
from medactive.encoders.backbones import build_backbone, skip_head_init
from medactive.encoders.simsiam import SimSiamHead, simsiam_objective
from medactive.errors import ConfigError

logger = logging.getLogger(__name__)

#: settings that only one method has: left out of the other methods' content keys (so SimCLR's
#: keys, and the names of its encoder files, are what they were before SimSiam existed)
METHOD_SETTINGS = {"temperature": "simclr", "predictor_dim": "simsiam"}


@dataclass(frozen=True)
class SSLConfig:
    """Settings of the self-supervised pretraining.

    Attributes:
        method: ``"simclr"`` or ``"simsiam"`` (:data:`SSL_METHODS`).
        epochs: passes over the pool.
        batch_size: images per batch (each gives two views, so ``2 * batch_size`` forward rows).
        lr: Adam learning rate (cosine decay to 0 over all steps).
        weight_decay: Adam weight decay.
        temperature: SimCLR only: NT-Xent temperature ``tau``.
        projection_dim: output size of the projection head (its hidden layer has the
            backbone's feature size).
        predictor_dim: SimSiam only: hidden size of the predictor bottleneck (default
            ``projection_dim // 4``, the paper's 2048 -> 512 ratio).
        crop_min: smallest area fraction of the random resized crop.
        max_rotation: rotations are drawn in ``±max_rotation`` degrees (180: any angle, which
            suits blood smears, cell and fundus images that have no upright orientation).
        vertical_flip: also flip vertically at random (orientation-free images).
        jitter: brightness and contrast factors in ``1 ± jitter``.
        saturation: RGB only: saturation factor in ``1 ± saturation`` (SimCLR's colour
            distortion; 0 off).
        grayscale: RGB only: probability of turning a view grey (SimCLR uses 0.2).
    """

    method: str = "simclr"
    epochs: int = 5
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    temperature: float = 0.5
    projection_dim: int = 64
    crop_min: float = 0.35
    max_rotation: float = 15.0
    vertical_flip: bool = False
    jitter: float = 0.4
    saturation: float = 0.0
    grayscale: float = 0.0
    predictor_dim: int | None = None

    def __post_init__(self) -> None:
        if self.method == "simsiam" and self.predictor_dim is None:
            object.__setattr__(self, "predictor_dim", max(1, self.projection_dim // 4))

    def to_dict(self) -> dict[str, Any]:
        """The settings of this method (another method's settings are left out)."""
        return {k: v for k, v in asdict(self).items()
                if METHOD_SETTINGS.get(k, self.method) == self.method}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, source: str = "ssl") -> SSLConfig:
        """Validated settings from a (possibly partial) dict; missing keys take the defaults.

        Raises:
            ConfigError: unknown key, unknown method or a value out of range.
        """
        data = dict(data or {})
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                              f"allowed: {', '.join(sorted(allowed))}")
        method = data.get("method", "simclr")
        if method not in SSL_METHODS:
            raise ConfigError(f"{source}: unknown method {method!r}; choose one of "
                              f"{', '.join(SSL_METHODS)}")
        defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
        for key, owner in METHOD_SETTINGS.items():
            if owner != method and key in data and data[key] != defaults[key]:
                raise ConfigError(f"{source}: {key} is a {owner} setting; method {method} "
                                  "has none")
        predictor = data.get("predictor_dim")
        if method == "simsiam" and predictor is not None and (
                isinstance(predictor, bool) or not isinstance(predictor, int) or predictor < 1):
            raise ConfigError(f"{source}: predictor_dim must be a positive integer, got "
                              f"{predictor!r}")
        for key in ("epochs", "batch_size", "projection_dim"):
            value = data.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{source}: {key} must be a positive integer, got {value!r}")
        if data.get("batch_size", 2) < 2:
            raise ConfigError(f"{source}: batch_size must be at least 2 (SimCLR's negatives "
                              "are the other images of the batch; batch norm needs two)")
        for key in ("lr", "temperature"):
            value = data.get(key, 1.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{source}: {key} must be a positive number, got {value!r}")
        decay = data.get("weight_decay", 0.0)
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or decay < 0:
            raise ConfigError(f"{source}: weight_decay must be >= 0, got {decay!r}")
        for key, low, high in (("crop_min", 0.01, 1.0), ("max_rotation", 0.0, 180.0),
                               ("jitter", 0.0, 0.99), ("saturation", 0.0, 1.0),
                               ("grayscale", 0.0, 1.0)):
            value = data.get(key, low)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not low <= value <= high:
                raise ConfigError(f"{source}: {key} must be a number in [{low}, {high}], got "
                                  f"{value!r}")
        if not isinstance(data.get("vertical_flip", False), bool):
            raise ConfigError(f"{source}: vertical_flip must be true or false")
        for key in ("lr", "temperature", "weight_decay", "crop_min", "max_rotation", "jitter",
                    "saturation", "grayscale"):
            if key in data:
                data[key] = float(data[key])
        return cls(**data)

    def augment_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`simclr_augment` these settings ask for."""
        return {"crop_scale": (self.crop_min, 1.0), "max_rotation": self.max_rotation,
                "vertical_flip": self.vertical_flip, "jitter": self.jitter,
                "saturation": self.saturation, "grayscale": self.grayscale}


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy over ``n`` positive pairs.

    With ``u`` the L2-normalised rows of ``[z1; z2]`` (``2n`` views) and
    ``s_ij = u_i . u_j / tau``, view ``i``'s loss is
    ``-log(exp(s_i,p(i)) / sum_{j != i} exp(s_ij))``, ``p(i)`` its partner (``i ± n``); the
    result is the mean over the ``2n`` views.

    Args:
        z1: ``[n, d]`` projections of the first views.
        z2: ``[n, d]`` projections of the second views (row ``k`` pairs with ``z1[k]``).
        temperature: ``tau`` > 0.

    Returns:
        A scalar tensor.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be [n, d], got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    n = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = u @ u.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=sim.device), -math.inf)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(sim.device)
    return F.cross_entropy(sim, partner)


def simclr_augment(x: torch.Tensor, generator: torch.Generator, *,
                   crop_scale: tuple[float, float] = (0.35, 1.0), max_rotation: float = 15.0,
                   jitter: float = 0.4, vertical_flip: bool = False, saturation: float = 0.0,
                   grayscale: float = 0.0) -> torch.Tensor:
    """One random SimCLR view of each image of ``x`` ``[n, C, H, W]`` (values in [0, 1]).

    Random resized crop (area fraction in ``crop_scale``, aspect ratio 3/4–4/3), horizontal
    flip (and vertical, with ``vertical_flip``), rotation within ``±max_rotation`` degrees (one
    affine resampling, reflection padding), then brightness and contrast factors in
    ``1 ± jitter``; for RGB images also a saturation factor in ``1 ± saturation`` and, with
    probability ``grayscale``, a grey view. Works on grey (``C = 1``) and RGB images of any
    size; keeps shape and dtype. With the defaults the random draws are those of earlier
    versions, so results of existing settings do not change.
    """
    n = x.shape[0]

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    area = crop_scale[0] + (crop_scale[1] - crop_scale[0]) * rand(n)
    log_ratio = (rand(n) * 2 - 1) * math.log(4 / 3)
    sx = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)   # crop side / image side
    sy = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
    tx = (rand(n) * 2 - 1) * (1 - sx)                               # crop stays inside
    ty = (rand(n) * 2 - 1) * (1 - sy)
    flip = torch.where(rand(n) < 0.5, -1.0, 1.0)
    angle = (rand(n) * 2 - 1) * math.radians(max_rotation)
    vflip = torch.where(rand(n) < 0.5, -1.0, 1.0) if vertical_flip else torch.ones(n)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([sx * flip * cos, -sy * vflip * sin, tx], 1),
                         torch.stack([sx * flip * sin, sy * vflip * cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, torch.float32), [n, *x.shape[1:]],
                         align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection",
                        align_corners=False)
    brightness = (1 + (rand(n) * 2 - 1) * jitter).to(out)[:, None, None, None]
    contrast = (1 + (rand(n) * 2 - 1) * jitter).to(out)[:, None, None, None]
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * contrast + mean) * brightness
    if out.shape[1] == 3 and (saturation > 0 or grayscale > 0):
        grey = (0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3])
        factor = (1 + (rand(n) * 2 - 1) * saturation).to(out)[:, None, None, None]
        factor = torch.where((rand(n) < grayscale).to(out.device)[:, None, None, None],
                             torch.zeros_like(factor), factor)
        out = grey + (out - grey) * factor
    return out.clamp(0.0, 1.0).to(x.dtype)


class ProjectionHead(nn.Module):
    """SimCLR's 2-layer MLP ``d -> d -> projection_dim`` with a ReLU between."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, in_features), nn.ReLU(inplace=True),
                                 nn.Linear(in_features, out_features))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


@dataclass(frozen=True)
class SSLMethod:
    """One self-supervised method of :func:`pretrain_ssl`.

    Attributes:
        title: its name in logs and progress bars.
        build_head: ``(backbone features d, settings) -> head`` (trained, then dropped).
        loss: ``(head, features [2n, d], settings) -> scalar loss``; rows ``k`` and ``n + k``
            of the features are the two views of image ``k``.
    """

    title: str
    build_head: Callable[[int, SSLConfig], nn.Module]
    loss: Callable[[nn.Module, torch.Tensor, SSLConfig], torch.Tensor]


def _simclr_loss(head: nn.Module, h: torch.Tensor, config: SSLConfig) -> torch.Tensor:
    z = head(h)
    n = z.shape[0] // 2
    return nt_xent_loss(z[:n], z[n:], config.temperature)


#: the self-supervised methods by name (``--method``, grid ``encoder = {method = ...}``)
SSL_METHODS: dict[str, SSLMethod] = {
    "simclr": SSLMethod("SimCLR", lambda d, c: ProjectionHead(d, c.projection_dim),
                        _simclr_loss),
    "simsiam": SSLMethod("SimSiam", lambda d, c: SimSiamHead(d, c.projection_dim,
                                                             int(c.predictor_dim)),
                         lambda head, h, c: simsiam_objective(head, h)),
}


def pretrain_ssl(split: Split, *, config: SSLConfig, model: str, in_channels: int,
                    width: int | None = None, image_size: int | None = None, seed: int = 0,
                    idx: np.ndarray | None = None, device: str = "cpu", progress: bool = False,
                    on_epoch: Callable[[int, float], None] | None = None,
                    checkpoint: str | Path | None = None, checkpoint_key: Any = None,
                    ) -> dict[str, torch.Tensor]:
    """Self-supervised pretraining (``config.method``) of the backbone of classifier ``model``
    on ``split``, without its labels.

    Args:
        split: the pool (its labels are never read).
        config: pretraining settings (the method among them).
        model, in_channels, width: the classifier whose backbone is trained (as
            :func:`~medactive.encoders.backbones.build_backbone`).
        image_size: resize images to this side (the training preset's).
        seed: seeds initialisation, batch order and augmentation.
        idx: ``[n]`` rows of ``split`` to train on (default: all).
        progress: report progress over epochs (:mod:`medactive.progress`).
        on_epoch: called with ``(epoch, mean loss)`` after each epoch.
        checkpoint: a file the full training state (weights, optimiser, schedule, random
            generator, epoch) is written to after every epoch; when it already holds a state
            of ``checkpoint_key``, training continues after its last epoch, so a killed
            pretraining resumes to the same weights as an uninterrupted one.
        checkpoint_key: JSON-like value identifying the settings behind ``checkpoint``.

    Returns:
        The backbone's state dict (CPU tensors), loadable into ``Classifier.backbone``.
    """
    from medactive.progress import progress_bar

    idx = np.arange(len(split), dtype=np.int64) if idx is None else np.asarray(idx, np.int64)
    n = idx.size
    if n < 2:
        raise ConfigError(f"self-supervised pretraining needs at least 2 images, got {n}")
    if config.method not in SSL_METHODS:
        raise ConfigError(f"unknown self-supervised method {config.method!r}; choose one of "
                          f"{', '.join(SSL_METHODS)}")
    method = SSL_METHODS[config.method]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    backbone = build_backbone(model, in_channels=in_channels, width=width)
    skip_head_init(backbone)
    head = method.build_head(backbone.out_features, config)
    params = list(backbone.parameters()) + list(head.parameters())
    optimiser = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    batch_size = min(config.batch_size, n)
    steps = config.epochs * max(1, n // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    first_epoch = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        try:
            saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged checkpoint means starting over
            logger.warning("%s: unreadable checkpoint (%s); pretraining from the start",
                           checkpoint, exc)
            saved = None
        if saved is not None and saved.get("key") == _jsonable(checkpoint_key):
            backbone.load_state_dict(saved["backbone"])
            head.load_state_dict(saved["head"])
            optimiser.load_state_dict(saved["optimiser"])
            scheduler.load_state_dict(saved["scheduler"])
            gen.set_state(saved["generator"])
            first_epoch = int(saved["epoch"]) + 1
            logger.info("%s resumed from %s after epoch %d", method.title, checkpoint,
                        first_epoch)
        elif saved is not None:
            logger.info("%s holds another pretraining; starting from epoch 0", checkpoint)
    backbone.to(device)
    head.to(device)
    in_memory = isinstance(split.images, np.ndarray) and n <= 200000
    cached = load_images(split, idx, image_size) if in_memory else None
    augment = config.augment_options()
    steps_per_epoch = n // batch_size
    bar = progress_bar(config.epochs * steps_per_epoch,
                       desc=f"{method.title} ({n} images, {config.epochs} epochs)", unit="step",
                       enabled=progress)
    bar.update(first_epoch * steps_per_epoch)
    try:
        for epoch in range(first_epoch, config.epochs):
            backbone.train()
            head.train()
            order = torch.randperm(n, generator=gen)
            total, seen = 0.0, 0
            # full batches only: SimCLR compares each view with 2 * batch - 2 negatives, and
            # batch norm is not fed a batch of one
            for start in range(0, n - batch_size + 1, batch_size):
                batch = order[start:start + batch_size]
                x = (cached[batch] if cached is not None
                     else load_images(split, idx[batch.numpy()], image_size))
                views = torch.cat([simclr_augment(x, gen, **augment),
                                   simclr_augment(x, gen, **augment)])
                loss = method.loss(head, backbone(normalise_batch(views).to(device)), config)
                total += optimisation_step(loss, optimiser, scheduler, what=method.title,
                                           epoch=epoch) * len(batch)
                seen += len(batch)
                bar.update(1)
            mean_loss = total / max(1, seen)
            bar.set_postfix(epoch=epoch + 1, loss=f"{mean_loss:.3f}")
            logger.info("%s epoch %d: loss %.4f", method.title, epoch, mean_loss)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, {
                    "key": _jsonable(checkpoint_key), "epoch": epoch,
                    "backbone": _cpu_state(backbone), "head": _cpu_state(head),
                    "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                    "generator": gen.get_state(), "loss": mean_loss})
            if on_epoch is not None:
                on_epoch(epoch, mean_loss)
    finally:
        bar.close()
    backbone.eval()
    return _cpu_state(backbone)


#: the name :mod:`medactive.tasks.classification.task` imports (it passes SimCLR settings)
pretrain_simclr = pretrain_ssl


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def backbone_embeddings(backbone_state: dict[str, torch.Tensor], split: Split, *, model: str,
                        in_channels: int, width: int | None = None,
                        image_size: int | None = None, batch_size: int = 512,
                        device: str = "cpu") -> np.ndarray:
    """L2-normalised features ``[n, d]`` of every image of ``split`` under a pretrained backbone.

    Normalised because the contrastive loss compares directions (cosine similarity), so
    Euclidean distances between these rows (Core-Set, TypiClust) follow that geometry.
    """
    backbone = build_backbone(model, in_channels=in_channels, width=width)
    backbone.load_state_dict(backbone_state)
    backbone.to(device).eval()
    out = []
    for start in range(0, len(split), batch_size):
        rows = np.arange(start, min(start + batch_size, len(split)))
        h = backbone(normalise_batch(load_images(split, rows, image_size)).to(device))
        out.append(F.normalize(h.float(), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, backbone.out_features), np.float32)
