"""FixMatch for semi-supervised classification (survey §4.1.2): settings, loss, augmentations.

FixMatch trains on a labelled batch of ``B`` images with cross-entropy on weakly augmented
views and on ``mu * B`` unlabelled pool images with a confidence-masked consistency loss: the
model's prediction on a *weak* view becomes a hard pseudo-target when its top probability
reaches ``tau``, and the model is trained (cross-entropy) to predict that target on a *strong*
view of the same image::

    loss = CE(f(weak(x_l)), y)
           + lambda_u * mean_u[1(max q_u >= tau) * CE(f(strong(u)), argmax q_u)]
    q_u = softmax(f(weak(u)))   (no gradient through q_u)

:func:`fit_classifier <medactive.tasks.classification.train.fit_classifier>` runs the recipe when
it is given unlabelled pool indices and a :class:`FixMatchConfig`; this module holds the
pieces, each testable alone:

- :func:`fixmatch_unlabeled_loss` — the masked loss above (samples below ``tau`` add exactly 0);
- :func:`weak_augment` — random horizontal flip + translation by up to 12.5 % of the side
  (reflection padding), the paper's weak transform;
- :func:`strong_augment` — RandAugment as FixMatch uses it: per image ``n_ops`` operations drawn
  uniformly from the list below, each at a magnitude drawn uniformly at random (FixMatch's
  "RA with random magnitude"), then Cutout of a square up to half the side, filled with grey;
- :func:`feature_weak` / :func:`feature_strong` — *our* feature-space equivalent for frozen
  encoders, where images are not seen: noise relative to each embedding's scale (weak) and
  stronger noise plus feature dropout (strong). FixMatch has no such variant; it is an
  assumption of this project, in the spirit of feature-space augmentation.

Pseudo-targets exist only inside a training step: they are never returned or stored as labels.

References:
    Sohn et al., "FixMatch: Simplifying semi-supervised learning with consistency and
    confidence", NeurIPS 2020 (Table 12: the RandAugment operations and their ranges).
    Cubuk et al., "RandAugment: Practical automated data augmentation with a reduced search
    space", CVPR Workshops 2020. DeVries and Taylor, "Improved regularization of convolutional
    neural networks with Cutout", 2017.

Example:
    >>> logits = torch.tensor([[4.0, 0.0], [0.1, 0.0]])   # confident, unsure
    >>> loss, mask = fixmatch_unlabeled_loss(logits, logits, threshold=0.95)
    >>> mask.tolist()
    [True, False]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.nn import functional as F

from medactive._validation import config_from_options, semi_method_config
from medactive.errors import ConfigError

#: the names ``semi_supervised`` accepts for classification
METHODS = ("fixmatch",)


@dataclass(frozen=True)
class FixMatchConfig:
    """Settings of FixMatch (defaults: Sohn et al. 2020, CIFAR/SVHN recipe).

    Attributes:
        threshold: ``tau``, the top softmax probability on the weak view at which an unlabelled
            image gets a pseudo-target (paper: 0.95).
        lambda_u: weight of the unlabelled loss (paper: 1).
        mu: unlabelled images per labelled image in a step (paper: 7, i.e. ``7 * B``).
        n_ops: RandAugment operations per strong view (paper: N = 2).
        cutout: Cutout's largest square side as a fraction of the image side (paper: 0.5); 0
            disables Cutout.
        steps_per_epoch: optimiser steps per epoch. ``None`` (default): one pass over the
            labelled set, ``ceil(n_labeled / B)`` steps, the supervised recipe's epoch, so
            "with" and "without" FixMatch take the same number of steps and the preset's
            ``epochs``/``eval_every`` keep their meaning. An integer: that many steps per epoch,
            labelled batches cycling over reshuffled passes — the paper's definition, where
            training length does not depend on the number of labels (its 2^20 steps are out of
            reach on a CPU; set e.g. 50 so a 20-label round still sees unlabelled data).
        max_unlabeled_per_epoch: CPU deviation: at most this many unlabelled images per epoch;
            when ``steps * mu * B`` exceeds it the unlabelled batch shrinks to
            ``max(2, cap // steps)`` (``None``: no cap, the paper's ``mu * B`` every step).
    """

    threshold: float = 0.95
    lambda_u: float = 1.0
    mu: int = 7
    n_ops: int = 2
    cutout: float = 0.5
    steps_per_epoch: int | None = None
    max_unlabeled_per_epoch: int | None = None

    def __post_init__(self) -> None:
        def number(name: str, low: float, high: float) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or not low <= value <= high:
                raise ConfigError(f"fixmatch {name} must be a number in [{low}, {high}], "
                                  f"got {value!r}")

        def integer(name: str, low: int, optional: bool = False) -> None:
            value = getattr(self, name)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"fixmatch {name} must be an integer >= {low}"
                                  f"{' or None' if optional else ''}, got {value!r}")

        number("threshold", 0.0, 1.0)
        number("lambda_u", 0.0, math.inf)
        number("cutout", 0.0, 1.0)
        integer("mu", 1)
        integer("n_ops", 0)
        integer("steps_per_epoch", 1, optional=True)
        integer("max_unlabeled_per_epoch", 2, optional=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, options: dict[str, Any] | None, *, source: str = "semi_options"
                  ) -> FixMatchConfig:
        """Defaults overridden by ``options`` (e.g. ``{"threshold": 0.9}``).

        Raises:
            ConfigError: an unknown field or a bad value (the message names ``source`` and the
                key).
        """
        return config_from_options(cls, options, source=source, what="fixmatch")


def semi_supervised_config(method: str | None, options: dict[str, Any] | None = None
                           ) -> FixMatchConfig | None:
    """The settings of classification method ``method`` (``None``: supervised only).

    Raises:
        ConfigError: an unknown method, options without a method, or bad options.
    """
    return semi_method_config(method, options, methods=METHODS, task="classification",
                              build=FixMatchConfig.from_dict)


def fixmatch_unlabeled_loss(logits_weak: torch.Tensor, logits_strong: torch.Tensor,
                            threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's confidence-masked consistency loss over an unlabelled batch.

    With ``q = softmax(logits_weak)`` (detached: no gradient flows through the target),
    ``mask_i = max_c q_ic >= threshold`` and ``t_i = argmax_c q_ic``, the loss is
    ``(1 / n) * sum_i mask_i * CE(logits_strong_i, t_i)`` — the mean over the *whole* batch,
    as in the paper, so its size shrinks as fewer images pass. Masked-out samples contribute
    exactly 0 (also to the gradient), even when their cross-entropy would be infinite.

    Args:
        logits_weak: ``[n, c]`` logits of the weak views.
        logits_strong: ``[n, c]`` logits of the strong views of the same images.
        threshold: ``tau`` in [0, 1].

    Returns:
        ``(loss, mask)``: a scalar tensor (0 for an empty batch) and the ``[n]`` bool mask.

    Raises:
        ValueError: the logits are not two ``[n, c]`` tensors of one shape, or ``threshold``
            is outside [0, 1].
    """
    if logits_weak.ndim != 2 or logits_weak.shape != logits_strong.shape:
        raise ValueError(f"logits must both be [n, c], got {tuple(logits_weak.shape)} and "
                         f"{tuple(logits_strong.shape)}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    probs = torch.softmax(logits_weak.detach().float(), dim=1)
    confidence, targets = probs.max(dim=1)
    mask = confidence >= threshold
    if logits_strong.shape[0] == 0:
        return logits_strong.sum() * 0.0, mask
    ce = F.cross_entropy(logits_strong, targets, reduction="none")
    loss = torch.where(mask, ce, torch.zeros_like(ce)).sum() / logits_strong.shape[0]
    return loss, mask


# ---------------------------------------------------------------------------------------------
# image augmentations ([n, C, H, W] in [0, 1]); random numbers are drawn on the CPU generator


def _check_images(x: torch.Tensor) -> None:
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"images must be a float tensor [n, C, H, W], got "
                         f"{tuple(x.shape)} {x.dtype}")


def _uniform(n: int, low: float, high: float, generator: torch.Generator,
             like: torch.Tensor) -> torch.Tensor:
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return (low + (high - low) * u).to(device=like.device, dtype=like.dtype)


def _hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _shift(x: torch.Tensor, max_fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by whole pixels, up to ``max_fraction`` of its side, reflecting."""
    n, _, h, w = x.shape
    ph, pw = round(max_fraction * h), round(max_fraction * w)
    if n == 0 or (ph == 0 and pw == 0):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    padded = F.pad(x, (pw, pw, ph, ph), mode=mode)
    dy = torch.randint(0, 2 * ph + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pw + 1, (n,), generator=generator).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)             # [n, H]
    cols = dx[:, None] + torch.arange(w, device=x.device)             # [n, W]
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]        # [n, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def weak_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """FixMatch's weak view: random horizontal flip and a translation of up to 12.5 %.

    Each image is flipped with probability 0.5 and shifted by a whole number of pixels in
    ``[-0.125 * side, 0.125 * side]`` along each axis, the border filled by reflection (the
    paper's pad-and-crop).

    Args:
        x: ``[n, C, H, W]`` float images in [0, 1] (grey or RGB).
        generator: the source of randomness.

    Returns:
        ``[n, C, H, W]`` of ``x``'s dtype and device, values in [0, 1].
    """
    _check_images(x)
    return _shift(_hflip(x, generator), 0.125, generator)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp by per-image affine ``theta`` ``[m, 2, 3]`` (normalised coords), grey fill (0.5)."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - 0.5, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False) + 0.5


def _matrix(a: torch.Tensor, b: torch.Tensor, tx: torch.Tensor, c: torch.Tensor,
            d: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1)


def _rotate(x, g):
    angle = _uniform(len(x), -30.0, 30.0, g, x) * math.pi / 180.0
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    return _affine(x, _matrix(cos, -sin, zero, sin, cos, zero))


def _shear_x(x, g):
    s = _uniform(len(x), -0.3, 0.3, g, x)
    one, zero = torch.ones_like(s), torch.zeros_like(s)
    return _affine(x, _matrix(one, s, zero, zero, one, zero))


def _shear_y(x, g):
    s = _uniform(len(x), -0.3, 0.3, g, x)
    one, zero = torch.ones_like(s), torch.zeros_like(s)
    return _affine(x, _matrix(one, zero, zero, s, one, zero))


def _translate_x(x, g):
    t = _uniform(len(x), -0.3, 0.3, g, x) * 2.0  # normalised coords span 2
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return _affine(x, _matrix(one, zero, t, zero, one, zero))


def _translate_y(x, g):
    t = _uniform(len(x), -0.3, 0.3, g, x) * 2.0
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return _affine(x, _matrix(one, zero, zero, zero, one, t))


def _factor(x, g):
    """An enhancement factor in [0.05, 1.95] per image, shaped to broadcast."""
    return _uniform(len(x), 0.05, 1.95, g, x)[:, None, None, None]


def _blend(degenerate, x, factor):
    return degenerate + factor * (x - degenerate)


def _grey(x):
    if x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
        return (x * w[None, :, None, None]).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def _brightness(x, g):
    return _blend(torch.zeros_like(x), x, _factor(x, g))


def _contrast(x, g):
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(mean.expand_as(x), x, _factor(x, g))


def _color(x, g):  # saturation; only in the RGB list
    return _blend(_grey(x).expand_as(x), x, _factor(x, g))


def _sharpness(x, g):
    c = x.shape[1]
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]],
                          device=x.device, dtype=x.dtype) / 13.0  # PIL's SMOOTH filter
    smooth = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"),
                      kernel.expand(c, 1, 3, 3), groups=c)
    return _blend(smooth, x, _factor(x, g))


def _posterize(x, g):
    bits = torch.randint(4, 9, (len(x),), generator=g).to(device=x.device, dtype=x.dtype)
    step = (2.0 ** (8 - bits))[:, None, None, None]  # keep the top ``bits`` of 8-bit values
    return torch.floor(torch.round(x * 255) / step) * step / 255


def _solarize(x, g):
    t = _uniform(len(x), 0.0, 1.0, g, x)[:, None, None, None]
    return torch.where(x >= t, 1.0 - x, x)


def _autocontrast(x, g):
    low = x.amin(dim=(2, 3), keepdim=True)
    high = x.amax(dim=(2, 3), keepdim=True)
    span = high - low
    return torch.where(span > 0, (x - low) / span.clamp_min(1e-12), x)


def _equalize(x, g):
    n, c, h, w = x.shape
    q = (x.clamp(0, 1) * 255).round().long().reshape(n, c, h * w)
    hist = torch.zeros(n, c, 256, device=x.device, dtype=torch.float64)
    hist.scatter_add_(2, q, torch.ones_like(q, dtype=torch.float64))
    cdf = hist.cumsum(2)
    cdf_min = torch.where(hist > 0, cdf, torch.full_like(cdf, math.inf)).amin(2, keepdim=True)
    denom = (h * w - cdf_min)
    lut = ((cdf - cdf_min) / denom.clamp_min(1)).clamp(0, 1)
    out = torch.gather(lut, 2, q).to(x.dtype).reshape(n, c, h, w)
    return torch.where((denom > 0).reshape(n, c, 1, 1), out, x)


def _identity(x, g):
    return x


_Op = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
#: FixMatch's RandAugment list (Table 12) minus Color for grey images
_OPS: dict[str, _Op] = {
    "identity": _identity, "autocontrast": _autocontrast, "equalize": _equalize,
    "rotate": _rotate, "solarize": _solarize, "color": _color, "posterize": _posterize,
    "contrast": _contrast, "brightness": _brightness, "sharpness": _sharpness,
    "shear_x": _shear_x, "shear_y": _shear_y, "translate_x": _translate_x,
    "translate_y": _translate_y,
}
STRONG_OPS = tuple(_OPS)


def _cutout(x: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    if n == 0 or fraction <= 0:
        return x
    side = _uniform(n, 0.0, fraction, generator, x) * min(h, w)
    cy = _uniform(n, 0.0, h, generator, x)
    cx = _uniform(n, 0.0, w, generator, x)
    ys = torch.arange(h, device=x.device, dtype=x.dtype) + 0.5
    xs = torch.arange(w, device=x.device, dtype=x.dtype) + 0.5
    inside_y = (ys[None, :] - cy[:, None]).abs() <= side[:, None] / 2          # [n, H]
    inside_x = (xs[None, :] - cx[:, None]).abs() <= side[:, None] / 2          # [n, W]
    box = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]                # [n, 1, H, W]
    return torch.where(box, torch.full_like(x, 0.5), x)


def strong_augment(x: torch.Tensor, generator: torch.Generator, *, n_ops: int = 2,
                   cutout: float = 0.5) -> torch.Tensor:
    """FixMatch's strong view: RandAugment with random magnitudes, then Cutout.

    For each of ``n_ops`` rounds every image draws one operation uniformly from
    :data:`STRONG_OPS` (``color`` only for 3-channel images) and applies it at a magnitude
    drawn uniformly from the paper's range (Table 12): rotate ±30°, shear x/y ±0.3, translate
    x/y ±30 % of the side (geometric ops fill with grey 0.5); brightness, contrast, colour and
    sharpness blend with a degenerate image (black, the mean grey, the grey image, a smoothed
    image) by a factor in [0.05, 1.95] (both directions around 1, as the official CTAugment
    does); posterize to 4–8 bits; solarize above a threshold in [0, 1]; autocontrast;
    equalize; identity. Cutout then greys a square whose side is drawn in
    ``[0, cutout * side]`` at a uniform centre.

    Args:
        x: ``[n, C, H, W]`` float images in [0, 1] (grey or RGB).
        generator: the source of randomness.
        n_ops: operations per image (RandAugment's N; FixMatch: 2).
        cutout: the largest Cutout side as a fraction of the image side (0: no Cutout).

    Returns:
        ``[n, C, H, W]`` of ``x``'s dtype and device, values in [0, 1].

    Raises:
        ValueError: ``x`` is not a float ``[n, C, H, W]`` tensor, ``n_ops < 0`` or ``cutout``
            outside [0, 1].
    """
    _check_images(x)
    if n_ops < 0 or not 0.0 <= cutout <= 1.0:
        raise ValueError(f"need n_ops >= 0 and cutout in [0, 1], got {n_ops} and {cutout}")
    dtype = x.dtype
    names = [k for k in STRONG_OPS if k != "color" or x.shape[1] == 3]
    out = x
    for _ in range(n_ops):
        choice = torch.randint(0, len(names), (x.shape[0],), generator=generator)
        pieces = out.clone()
        for k, name in enumerate(names):
            sel = (choice == k).nonzero().flatten()
            if len(sel) and name != "identity":
                sel_dev = sel.to(x.device)
                pieces[sel_dev] = _OPS[name](out[sel_dev], generator).clamp(0.0, 1.0)
        out = pieces
    return _cutout(out, cutout, generator).clamp(0.0, 1.0).to(dtype)


# ---------------------------------------------------------------------------------------------
# feature-space views (frozen encoders): our equivalent, not the paper's


def _check_features(h: torch.Tensor) -> None:
    if h.ndim != 2 or not h.is_floating_point():
        raise ValueError(f"features must be a float tensor [n, d], got {tuple(h.shape)} "
                         f"{h.dtype}")


def _row_scale(h: torch.Tensor) -> torch.Tensor:
    """Each embedding's RMS value ``[n, 1]``, so noise is relative to the encoder's scale."""
    return h.pow(2).mean(dim=1, keepdim=True).sqrt()


def feature_weak(h: torch.Tensor, generator: torch.Generator, *, noise: float = 0.05
                 ) -> torch.Tensor:
    """The frozen-mode weak view: ``h + noise * rms(h_i) * N(0, I)`` per embedding.

    Our feature-space stand-in for FixMatch's flip-and-shift (a frozen encoder's embeddings
    cannot be augmented as images once cached): a small isotropic Gaussian perturbation whose
    size is relative to each row's RMS value, so it means the same for any encoder's scale.

    Args:
        h: ``[n, d]`` float embeddings.
        generator: the source of randomness.
        noise: relative standard deviation (default 0.05).

    Returns:
        ``[n, d]`` of ``h``'s dtype and device.
    """
    _check_features(h)
    eps = torch.randn(h.shape, generator=generator).to(device=h.device, dtype=h.dtype)
    return h + noise * _row_scale(h) * eps


def feature_strong(h: torch.Tensor, generator: torch.Generator, *, noise: float = 0.2,
                   drop: float = 0.2) -> torch.Tensor:
    """The frozen-mode strong view: relative Gaussian noise, then feature dropout.

    ``(h + noise * rms(h_i) * N(0, I)) * m / (1 - drop)`` with ``m_ij ~ Bernoulli(1 - drop)``:
    four times the weak noise and a fifth of the dimensions zeroed (inverted dropout keeps the
    expected value), our stand-in for RandAugment + Cutout (Cutout removes part of the input;
    dropout removes part of the representation). Not from the FixMatch paper.

    Args:
        h: ``[n, d]`` float embeddings.
        generator: the source of randomness.
        noise: relative standard deviation (default 0.2).
        drop: probability of zeroing each feature (default 0.2), in [0, 1).

    Returns:
        ``[n, d]`` of ``h``'s dtype and device.
    """
    _check_features(h)
    if not 0.0 <= drop < 1.0:
        raise ValueError(f"drop must be in [0, 1), got {drop}")
    eps = torch.randn(h.shape, generator=generator).to(device=h.device, dtype=h.dtype)
    keep = (torch.rand(h.shape, generator=generator) >= drop).to(device=h.device,
                                                                  dtype=h.dtype)
    return (h + noise * _row_scale(h) * eps) * keep / (1.0 - drop)
