"""Mean teacher for semi-supervised segmentation (survey §4.1.2): settings, ramp-up, EMA, loss.

The student U-Net trains on labelled slices (Dice + CE) and, on unlabelled slices, on a
consistency loss: the mean squared difference between its softmax and that of a teacher whose
weights are an exponential moving average (EMA) of the student's. :func:`train_unet
<medactive.tasks.segmentation.train.train_unet>` runs the recipe when it is given unlabelled images
and a :class:`MeanTeacherConfig`; this module holds the pieces, each testable alone.

The recipe follows SSL4MIS ``train_mean_teacher_2D.py`` (the code of Yu et al.'s UA-MT family):

- each step draws the preset's labelled batch and a batch of unlabelled slices (as many as the
  labelled batch by default: SSL4MIS's 12 + 12), augments both the same way (rot90/flip or a
  small rotation), and runs the student on both in one forward pass (batch norm sees both);
- the teacher sees the same augmented unlabelled slices plus Gaussian noise
  ``clamp(N(0, 0.1²), -0.2, 0.2)`` (images are in ``[0, 1]``), without gradients, in training
  mode (its dropout and batch statistics are part of the noise, as in Tarvainen & Valpola);
- loss = supervised loss + ``w(t) * mean((softmax(student) - softmax(teacher))²)`` over the
  unlabelled batch, classes and pixels, with ``w(t) = w_max * exp(-5 (1 - t / T)²)``,
  ``w_max = 0.1`` and ``T`` the whole round (SSL4MIS ramps over 200 "epochs" of 150 steps =
  its 30,000 iterations);
- after each optimiser step the teacher's parameters move to
  ``alpha * teacher + (1 - alpha) * student`` with ``alpha = min(1 - 1 / t, 0.99)`` (step
  ``t`` counted from 1, so the teacher copies the student at first and averages more as
  training goes on); buffers (batch-norm statistics) are not averaged, as in SSL4MIS;
- the **student** is validated, kept at its best validation Dice and evaluated (as SSL4MIS).

Deviations from SSL4MIS: the labelled batch keeps the preset's size (the supervised baseline's),
so "with" and "without" mean teacher see the same labelled slices per step; the unlabelled
stream (order, augmentation, noise) has its own generator, so the labelled stream is drawn as
in the supervised run of the same seed; the ramp length is a fraction of the round's iterations;
the supervised loss is the task's Dice + CE sum (SSL4MIS halves it, ``0.5 * (CE + Dice)``), so
the same ``w_max`` weighs the consistency half as much relative to it.
Pseudo-targets (teacher outputs) exist only inside a training step: they never become labels.

References:
    Tarvainen and Valpola, "Mean teachers are better role models: Weight-averaged consistency
    targets improve semi-supervised deep learning results", NeurIPS 2017. Yu et al.,
    "Uncertainty-aware self-ensembling model for semi-supervised 3D left atrium segmentation"
    (UA-MT), MICCAI 2019. Luo et al., SSL4MIS (github.com/HiLab-git/SSL4MIS).

Example:
    >>> cfg = MeanTeacherConfig.from_dict({"consistency": 0.2})
    >>> round(consistency_weight(50, 100, cfg.consistency), 4)  # 0.2 * exp(-5 * 0.25)
    0.0573
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from medactive._validation import config_from_options, semi_method_config
from medactive.errors import ConfigError

#: the names ``semi_supervised`` accepts for segmentation
METHODS = ("mean-teacher",)


@dataclass(frozen=True)
class MeanTeacherConfig:
    """Settings of the mean teacher (defaults: SSL4MIS ``train_mean_teacher_2D.py``).

    Attributes:
        ema_decay: the teacher's EMA decay ``alpha`` (0.99).
        consistency: ``w_max``, the weight of the consistency loss after the ramp-up (0.1).
        rampup: the ramp-up length ``T`` as a fraction of the round's iterations (1.0: the
            weight reaches ``w_max`` at the last step, as in SSL4MIS); 0 disables the ramp.
        noise_std: standard deviation of the Gaussian noise on the teacher's input (0.1).
        noise_clip: the noise is clamped to ``±noise_clip`` (0.2).
        unlabeled_batch_size: unlabelled slices per step; ``None``: the preset's batch size
            (SSL4MIS: half of its batch of 24 is unlabelled).
    """

    ema_decay: float = 0.99
    consistency: float = 0.1
    rampup: float = 1.0
    noise_std: float = 0.1
    noise_clip: float = 0.2
    unlabeled_batch_size: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"mean teacher ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("consistency", "rampup", "noise_std", "noise_clip"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"mean teacher {name} must be a number >= 0, got {value!r}")
        b = self.unlabeled_batch_size
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
            raise ConfigError(f"mean teacher unlabeled_batch_size must be an integer >= 1 or "
                              f"None, got {b!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, options: dict[str, Any] | None, *, source: str = "semi_options"
                  ) -> MeanTeacherConfig:
        """Defaults overridden by ``options`` (e.g. ``{"consistency": 1.0}``).

        Raises:
            ConfigError: an unknown field or a bad value (the message names ``source``).
        """
        return config_from_options(cls, options, source=source, what="mean-teacher")


def semi_supervised_config(method: str | None, options: dict[str, Any] | None = None
                           ) -> MeanTeacherConfig | None:
    """The settings of segmentation method ``method`` (``None``: supervised only).

    Raises:
        ConfigError: an unknown method, options without a method, or bad options.
    """
    return semi_method_config(method, options, methods=METHODS, task="segmentation",
                              build=MeanTeacherConfig.from_dict)


def consistency_weight(step: int, rampup_steps: int, w_max: float) -> float:
    """The sigmoid-shaped ramp-up ``w_max * exp(-5 (1 - min(step, T) / T)²)``.

    Args:
        step: the current step ``t`` (>= 0).
        rampup_steps: ``T``; 0 gives ``w_max`` at once.
        w_max: the weight after the ramp-up.

    Example:
        >>> [round(consistency_weight(t, 4, 1.0), 4) for t in (0, 2, 4, 9)]
        [0.0067, 0.2865, 1.0, 1.0]

    References:
        Laine and Aila, "Temporal ensembling for semi-supervised learning", ICLR 2017 (the
        ramp-up); SSL4MIS ``utils/ramps.py`` ``sigmoid_rampup``.
    """
    if rampup_steps <= 0:
        return float(w_max)
    phase = 1.0 - min(max(step, 0), rampup_steps) / rampup_steps
    return float(w_max * math.exp(-5.0 * phase * phase))


def ema_alpha(step: int, decay: float) -> float:
    """``min(1 - 1 / step, decay)``: the EMA factor after optimiser step ``step`` (from 1).

    Example:
        >>> [ema_alpha(t, 0.99) for t in (1, 2, 4, 1000)]
        [0.0, 0.5, 0.75, 0.99]
    """
    return min(1.0 - 1.0 / max(int(step), 1), float(decay))


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float) -> None:
    """``teacher_p <- alpha * teacher_p + (1 - alpha) * student_p`` for every parameter.

    Buffers (batch-norm running statistics) are left alone, as in SSL4MIS
    ``update_ema_variables``.
    """
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)


def consistency_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor
                     ) -> torch.Tensor:
    """Mean squared difference of the two softmax outputs (teacher side detached).

    Args:
        student_logits: ``[b, c, h, w]``.
        teacher_logits: ``[b, c, h, w]``.

    Returns:
        A scalar: the mean over batch, classes and pixels of ``(p_s - p_t)²``.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    p_s = torch.softmax(student_logits, dim=1)
    p_t = torch.softmax(teacher_logits.detach(), dim=1)
    return torch.mean((p_s - p_t) ** 2)


def teacher_noise(x: torch.Tensor, std: float, clip: float, gen: torch.Generator
                  ) -> torch.Tensor:
    """``x + clamp(std * N(0, 1), -clip, clip)`` with the noise drawn from ``gen`` (CPU)."""
    noise = torch.randn(x.shape, generator=gen).mul_(std).clamp_(-clip, clip)
    return x + noise.to(x.device)
