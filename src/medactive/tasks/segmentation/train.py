"""Training a U-Net on labeled slices (survey §6.1.5) and predicting volumes slice by slice.

One round: Adam with a polynomially decaying learning rate, Dice + cross-entropy loss (MONAI
:class:`~monai.losses.DiceCELoss`; Dice over the whole batch per class, as SSL4MIS computes it,
unless the preset says otherwise), batches drawn from successive random permutations of the
labeled slices, augmentation as in SSL4MIS (with probability 1/2 a random rot90 and flip, else
with probability 1/2 a rotation by an angle in ``±rotation_degrees``). Every ``val_every`` steps
(and after the last) the validation Dice is computed and the best weights are kept.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch import nn

from medactive._random import derive_seed
from medactive.progress import progress_bar
from medactive.tasks.learning_loss import RankingTerm, attach_loss_module, stop_epoch
from medactive.tasks.segmentation.losses import IGNORE_INDEX, partial_dice_ce
from medactive.tasks.segmentation.mean_teacher import (
    MeanTeacherConfig,
    consistency_loss,
    consistency_weight,
    ema_alpha,
    ema_update,
    teacher_noise,
)
from medactive.tasks.segmentation.presets import SegmentationPreset

logger = logging.getLogger(__name__)


@dataclass
class FitLog:
    """What one training run did.

    Attributes:
        iterations: optimiser steps.
        best_iteration: step whose weights were kept.
        best_val: validation Dice of the kept weights (NaN without validation).
        history: ``(step, mean training loss since the last check, validation Dice)``.
        seconds: wall time.
    """

    iterations: int = 0
    best_iteration: int = 0
    best_val: float = float("nan")
    history: list[tuple[int, float, float]] = field(default_factory=list)
    seconds: float = 0.0


def augment(images: torch.Tensor, masks: torch.Tensor, gen: torch.Generator,
            rotation_degrees: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SSL4MIS augmentation of a batch (random parameters from ``gen``, a CPU generator).

    Args:
        images: ``[b, 1, h, w]`` float (square ``h == w``).
        masks: ``[b, h, w]`` int64 (``IGNORE_INDEX`` where unlabelled: it moves with the
            labels, so the labelled region stays aligned with the image).
        gen: the random generator.
        rotation_degrees: maximum absolute angle of the arbitrary rotation.

    Returns:
        Augmented ``(images, masks)``, same shapes; rotated corners are filled with zeros
        (background).
    """
    b = images.shape[0]
    choice = torch.rand(b, generator=gen)
    second = torch.rand(b, generator=gen)
    ks = torch.randint(0, 4, (b,), generator=gen)
    flip_axis = torch.randint(0, 2, (b,), generator=gen)
    angles = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(rotation_degrees)
    images, masks = images.clone(), masks.clone()
    for i in torch.nonzero(choice > 0.5).flatten().tolist():
        k, axis = int(ks[i]), int(flip_axis[i])
        images[i] = torch.flip(torch.rot90(images[i], k, dims=(1, 2)), dims=(1 + axis,))
        masks[i] = torch.flip(torch.rot90(masks[i], k, dims=(0, 1)), dims=(axis,))
    rotate = torch.nonzero((choice <= 0.5) & (second > 0.5)).flatten()
    if rotate.numel() and rotation_degrees > 0:
        cos, sin = torch.cos(angles[rotate]), torch.sin(angles[rotate])
        theta = torch.zeros(rotate.numel(), 2, 3)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
        theta = theta.to(images.device)
        idx = rotate.to(images.device)
        grid = F.affine_grid(theta, [rotate.numel(), 1, *images.shape[-2:]], align_corners=False)
        images[idx] = F.grid_sample(images[idx], grid, mode="bilinear", padding_mode="zeros",
                                    align_corners=False)
        rotated = F.grid_sample(masks[idx, None].float(), grid, mode="nearest",
                                padding_mode="zeros", align_corners=False)
        masks[idx] = rotated[:, 0].round().long()
    return images, masks


def train_unet(net: nn.Module, images: torch.Tensor, masks: torch.Tensor,
               preset: SegmentationPreset, *, seed: int, device: torch.device | str = "cpu",
               validate: Callable[[nn.Module], float] | None = None,
               progress: bool = False, unlabeled: torch.Tensor | None = None,
               mean_teacher: MeanTeacherConfig | None = None) -> tuple[nn.Module, FitLog]:
    """Train ``net`` for ``preset.iterations`` steps and return it with the best weights.

    Args:
        net: the model (moved to ``device``; trained in place).
        images: ``[n, 1, h, w]`` float labeled slices (CPU or ``device``).
        masks: ``[n, h, w]`` int64 class indices; ``IGNORE_INDEX`` marks unlabelled pixels
            (then the loss is :func:`~.losses.partial_dice_ce`, else MONAI's ``DiceCELoss``).
        preset: training settings.
        seed: seeds batch order, augmentation and dropout.
        device: where to train.
        validate: ``net -> validation Dice`` (higher is better); ``None`` keeps the last weights.
        progress: report the steps (:mod:`medactive.progress`: a bar on a terminal, plain
            lines otherwise).
        unlabeled: ``[m, 1, h, w]`` float unlabelled slices for ``mean_teacher`` (ignored
            without it).
        mean_teacher: train a mean teacher with ``unlabeled`` (see :mod:`.mean_teacher`);
            ``None``: supervised only.

    Returns:
        ``(net, log)`` with ``net`` in eval mode holding the weights of the best validation
        (the student's, with a mean teacher).

    Raises:
        ValueError: no labelled slices, or a mean teacher without unlabelled slices.
    """
    start = time.perf_counter()
    device = torch.device(device)
    net = net.to(device)
    images = images.to(device)
    masks = masks.to(device).long()
    n = images.shape[0]
    if n == 0:
        raise ValueError("no labeled slices to train on")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, batch=preset.batch_dice)
    partial = bool((masks == IGNORE_INDEX).any())
    if preset.learning_loss:  # the loss-prediction module joins the net (and its optimiser)
        if mean_teacher is not None:
            raise ValueError("learning_loss with a mean teacher is not supported")
        attach_loss_module(net, images[:2], seed=seed)

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if partial:
            return partial_dice_ce(logits, y, batch=preset.batch_dice)
        return dice_ce(logits, y[:, None])

    teacher = None
    if mean_teacher is not None:
        if unlabeled is None or unlabeled.shape[0] == 0:
            raise ValueError("a mean teacher needs unlabeled slices")
        unlabeled = unlabeled.to(device)
        teacher = copy.deepcopy(net)
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.train()  # dropout and batch statistics are part of the teacher's noise
        u_gen = torch.Generator().manual_seed(derive_seed(seed, "mean-teacher"))
        u_batch = mean_teacher.unlabeled_batch_size or preset.batch_size
        u_order = torch.zeros(0, dtype=torch.long)
        u_blank = torch.zeros(u_batch, *unlabeled.shape[-2:], dtype=torch.long, device=device)
        rampup_steps = round(mean_teacher.rampup * preset.iterations)
    optimiser = torch.optim.Adam(net.parameters(), lr=preset.lr)
    log = FitLog(iterations=preset.iterations)
    best_state = None
    best_val = -math.inf
    order = torch.zeros(0, dtype=torch.long)
    running, n_running = 0.0, 0
    bar = progress_bar(preset.iterations, desc=f"train ({n} slices)", unit="step",
                       enabled=progress)
    net.train()
    for step in range(1, preset.iterations + 1):
        bar.update(1)
        if order.numel() < preset.batch_size:
            order = torch.cat([order, *(torch.randperm(n, generator=gen)
                                        for _ in range(math.ceil(preset.batch_size / n)))])
        batch, order = order[:preset.batch_size], order[preset.batch_size:]
        x, y = augment(images[batch.to(device)], masks[batch.to(device)], gen,
                       preset.rotation_degrees)
        for group in optimiser.param_groups:
            group["lr"] = preset.lr * (1 - (step - 1) / preset.iterations) ** preset.poly_power
        optimiser.zero_grad(set_to_none=True)
        term = RankingTerm.start(net, detach=step > stop_epoch(preset.iterations)) \
            if preset.learning_loss else None
        if teacher is None:
            loss = loss_fn(net(x), y)
        else:
            m = unlabeled.shape[0]
            if u_order.numel() < u_batch:
                u_order = torch.cat([u_order, *(torch.randperm(m, generator=u_gen)
                                                for _ in range(math.ceil(u_batch / m)))])
            u_idx, u_order = u_order[:u_batch], u_order[u_batch:]
            xu, _ = augment(unlabeled[u_idx.to(device)], u_blank, u_gen,
                            preset.rotation_degrees)
            logits = net(torch.cat([x, xu]))
            with torch.no_grad():
                teacher_logits = teacher(teacher_noise(xu, mean_teacher.noise_std,
                                                       mean_teacher.noise_clip, u_gen))
            w = consistency_weight(step, rampup_steps, mean_teacher.consistency)
            loss = (loss_fn(logits[:x.shape[0]], y)
                    + w * consistency_loss(logits[x.shape[0]:], teacher_logits))
        if term is not None:  # Yoo & Kweon 2019: per-image pixel CE ranked by the module
            loss = loss + term.finish(y, ignore_index=IGNORE_INDEX)
        loss.backward()
        optimiser.step()
        if teacher is not None:
            ema_update(teacher, net, ema_alpha(step, mean_teacher.ema_decay))
        running += float(loss.detach())
        n_running += 1
        if step % preset.val_every == 0 or step == preset.iterations:
            val = float("nan")
            if validate is not None:
                net.eval()
                with torch.no_grad():
                    val = float(validate(net))
                net.train()
                if val > best_val:
                    best_val, log.best_iteration, log.best_val = val, step, val
                    best_state = copy.deepcopy(net.state_dict())
            log.history.append((step, running / max(n_running, 1), val))
            logger.debug("step %d: loss %.4f, val dice %.4f", step, running / n_running, val)
            running, n_running = 0.0, 0
            if (preset.patience and validate is not None
                    and step - log.best_iteration >= preset.patience * preset.val_every):
                logger.info("validation plateau: stopped at step %d of at most %d (best at "
                            "step %d, Dice %.4f)", step, preset.iterations, log.best_iteration,
                            best_val)
                break
    bar.close()
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        log.best_iteration = preset.iterations
    net.eval()
    log.seconds = time.perf_counter() - start
    return net, log


def resize_slices(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``[n, 1, H, W]`` float images to ``[n, 1, size, size]`` (bilinear, anti-aliased)."""
    if tuple(images.shape[-2:]) == (size, size):
        return images.float()
    return F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)


def resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``[n, H, W]`` int masks to ``[n, size, size]`` (nearest, pixel-centre exact)."""
    if tuple(masks.shape[-2:]) == (size, size):
        return masks.long()
    out = F.interpolate(masks[:, None].float(), size=(size, size), mode="nearest-exact")
    return out[:, 0].round().long()


@torch.no_grad()
def predict_volume(net: nn.Module, inputs: torch.Tensor, out_shape: tuple[int, int], *,
                   device: torch.device | str = "cpu", batch_size: int = 32) -> torch.Tensor:
    """Label map of one volume predicted slice by slice at the original in-plane size.

    Args:
        net: the model (eval mode).
        inputs: ``[S, 1, h, w]`` slices resized to the network input.
        out_shape: original ``(H, W)``; the softmax probabilities are resized back to it
            (bilinear) before the argmax, as in the survey's evaluation.
        device: where to run.
        batch_size: slices per forward pass.

    Returns:
        ``[S, H, W]`` int64 labels (CPU).
    """
    labels = []
    for start in range(0, inputs.shape[0], batch_size):
        x = inputs[start:start + batch_size].to(device)
        probas = torch.softmax(net(x), dim=1)
        if tuple(probas.shape[-2:]) != tuple(out_shape):
            probas = F.interpolate(probas, size=tuple(out_shape), mode="bilinear",
                                   align_corners=False)
        if probas.is_cuda:
            labels.append(probas.argmax(dim=1).cpu())
        else:  # numpy's argmax over the class axis is several times faster than torch's on CPU
            labels.append(torch.from_numpy(probas.numpy().argmax(axis=1)))
    return torch.cat(labels).long()
