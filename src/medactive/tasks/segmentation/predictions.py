"""Model outputs over the slice pool, streamed so that dense stacks never exist in full.

:class:`SegmentationPredictions` answers the three calls strategies make:

- :meth:`~SegmentationPredictions.score` runs the network on batches of slices, applies a
  pixel-wise scoring function (``[b, c, h, w]`` → ``[b, h, w]``, or ``[b, c, h, w, t]`` for
  ``"mc_probas"``) and reduces each slice's pixel scores to one number — the mean (the survey,
  §6.1.4), the max, or a foreground-weighted mean — before the next batch. A
  ``[n, c, H, W, t]`` stack over the pool is never built.
- :meth:`~SegmentationPredictions.get` returns ``"embeddings"`` (the bottleneck features
  averaged over space, ``[n, d]``, for Core-Set) and, for a few slices, dense ``"probas"``
  ``[n, c, h, w]`` or ``"mc_probas"`` ``[n, c, h, w, t]``.
- :meth:`~SegmentationPredictions.gradient_embedding` gives BADGE's embedding: the gradient of
  the Dice + cross-entropy loss at the argmax pseudo-label w.r.t. the weights of the final 1×1
  convolution, ``[n, c * d]`` with ``d`` the channels entering it (64 for the survey's U-Net).

MC-dropout passes (``"mc_probas"``) keep batch norm frozen and re-enable the channel dropout
layers (:func:`per_sample_dropout`); each slice's masks come from a generator seeded with
``seed`` (the round's) and the slice's pool index, so a stack is the same however the pool is
split into requests and batches. The deterministic passes (``"probas"``, ``"embeddings"``) run
on a channels-last copy of the network (the same outputs up to float rounding, 1.2–1.4x the
slices/s of the cpu-preset U-Net on CPU; ``benchmarks/inference_speed.py``, issue 16); the MC
passes run on the network itself (channels-last did not speed them up).

References:
    Gal, Islam and Ghahramani, "Deep Bayesian Active Learning with Image Data", ICML 2017.
    Ash et al., "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds"
    (BADGE), ICLR 2020. Sener and Savarese, "Active Learning for Convolutional Neural Networks:
    A Core-Set Approach", ICLR 2018.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from medactive._random import derive_seed
from medactive.errors import ConfigError
from medactive.predictions import FIELDS, SCORE_FIELDS, Predictions
from medactive.progress import progress_bar
from medactive.tasks.discrepancy import discrepancy_providers
from medactive.tasks.learning_loss import predicted_loss_provider
from medactive.tasks.segmentation.unet import UNet2D
from medactive.tasks.tta import segmentation_tta

#: how a slice's pixel scores become one score
REDUCTIONS = ("mean", "max", "foreground")
_ALIASES = {"foreground_mean": "foreground", "fg": "foreground"}

#: elements of a dense batch (b * c * h * w * t) processed at once, about 64 MB in float32
_MAX_BATCH_ELEMENTS = 2 ** 24


def check_reduction(reduction: str) -> str:
    """The canonical name of ``reduction`` (``"foreground_mean"`` is ``"foreground"``).

    Raises:
        ConfigError: an unknown reduction.
    """
    name = _ALIASES.get(str(reduction), str(reduction))
    if name not in REDUCTIONS:
        raise ConfigError(f"unknown reduction {reduction!r}; choose one of "
                          f"{', '.join(REDUCTIONS)}")
    return name


def reduce_pixels(pixel_scores: np.ndarray, reduction: str,
                  foreground: np.ndarray | None = None) -> np.ndarray:
    """Reduce pixel scores ``[b, ...]`` to slice scores ``[b]``.

    Args:
        pixel_scores: ``[b, h, w]`` (any trailing dims) pixel-wise informativeness.
        reduction: ``"mean"``; ``"max"``; ``"foreground"``, the mean weighted by
            ``foreground`` (the predicted probability of not being background), so a slice is
            scored by its uncertainty on the structures rather than on the empty background
            (a slice predicted all background scores 0).
        foreground: ``[b, h, w]`` weights in ``[0, 1]`` (needed for ``"foreground"``).

    Example:
        >>> s = np.array([[[0.0, 1.0], [0.0, 3.0]]])
        >>> reduce_pixels(s, "mean"), reduce_pixels(s, "max")
        (array([1.]), array([3.]))
        >>> reduce_pixels(s, "foreground", np.array([[[1.0, 0.0], [0.0, 1.0]]]))
        array([1.5])
    """
    scores = np.asarray(pixel_scores, dtype=np.float64)
    flat = scores.reshape(scores.shape[0], -1)
    if reduction == "mean":
        return flat.mean(axis=1)
    if reduction == "max":
        return flat.max(axis=1)
    if reduction == "foreground":
        if foreground is None:
            raise ValueError("reduction='foreground' needs foreground weights")
        w = np.broadcast_to(np.asarray(foreground, dtype=np.float64), scores.shape)
        w = w.reshape(scores.shape[0], -1)
        total = w.sum(axis=1)
        out = np.zeros(scores.shape[0])
        ok = total > 1e-12
        out[ok] = (flat[ok] * w[ok]).sum(axis=1) / total[ok]
        return out
    raise ConfigError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")


def dice_ce_per_sample(logits: torch.Tensor, target: torch.Tensor, *, smooth: float = 1e-5
                       ) -> torch.Tensor:
    """Per-sample Dice + cross-entropy loss ``[b]`` (MONAI ``DiceCELoss`` on each sample alone).

    Args:
        logits: ``[b, c, h, w]``.
        target: ``[b, h, w]`` int64 class indices.
        smooth: MONAI's ``smooth_nr`` and ``smooth_dr``.

    The Dice term is ``1 - mean_k (2 Σ p_k y_k + s) / (Σ p_k + Σ y_k + s)`` over all classes,
    background included (MONAI's defaults); cross-entropy is averaged over pixels.
    """
    n_classes = logits.shape[1]
    probas = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target, n_classes).permute(0, 3, 1, 2).to(probas.dtype)
    inter = (probas * onehot).sum(dim=(2, 3))
    denom = probas.sum(dim=(2, 3)) + onehot.sum(dim=(2, 3))
    dice_loss = 1.0 - ((2.0 * inter + smooth) / (denom + smooth)).mean(dim=1)
    ce = F.cross_entropy(logits, target, reduction="none").mean(dim=(1, 2))
    return dice_loss + ce


@contextmanager
def per_sample_dropout(net: torch.nn.Module, seeds: Sequence[int]) -> Iterator[None]:
    """MC dropout whose masks depend on each sample only: while active, every dropout layer of
    ``net`` (left in eval mode, so batch norm stays frozen) multiplies row ``i`` of its input by
    a mask drawn from generator ``i`` (seeded with ``seeds[i]``) — channel masks for
    ``Dropout1d/2d/3d``, element masks for ``Dropout``. The layers run in the same order on
    every forward pass, so row ``i``'s masks follow its own stream whichever rows share the
    batch, and one batched forward pass serves all rows.

    References:
        Gal and Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016.
    """
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor,
             ) -> torch.Tensor:
        x = inputs[0]
        if module.p == 0:
            return output
        if x.shape[0] != len(generators):
            raise ValueError(f"per_sample_dropout has {len(generators)} seeds for a batch of "
                             f"{x.shape[0]}")
        keep = 1.0 - module.p
        channel = not isinstance(module, torch.nn.Dropout)
        shape = (x.shape[1],) + (1,) * (x.ndim - 2) if channel else tuple(x.shape[1:])
        mask = torch.stack([torch.rand(shape, generator=g) for g in generators]) < keep
        return x * mask.to(x.device) / keep

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


#: prediction fields only classification provides, and what a segmentation query is told
CLASSIFICATION_ONLY = {
    "vaal_unlabeled": "vaal is for classification; for segmentation use dal (on the U-Net's "
                      "bottleneck features)",
    "dfal_distance": "dfal is for classification (DeepFool on the classifier); for "
                     "segmentation use a pixel uncertainty such as entropy",
    "member_probas": "the ensemble and QBC strategies are for classification (--ensemble-size "
                     "is); for segmentation use bald on MC-dropout passes",
    "dirichlet_alpha": "the evidential strategies are for classification (--evidential is); "
                       "for segmentation use entropy or bald",
}


class SegmentationPredictions(Predictions):
    """Lazy, streamed outputs of a U-Net over pool slices.

    Args:
        net: the trained :class:`~medactive.tasks.segmentation.unet.UNet2D`.
        images: ``[n_pool, 1, h, w]`` pool slices at the network's input size (CPU tensor).
        seed: seeds the MC-dropout passes.
        device: where to run the network.
        batch_size: slices per forward pass (smaller for MC passes on large inputs).
        n_mc_samples: MC-dropout passes ``t`` behind ``"mc_probas"`` (settable).
        reduction: pixel → slice reduction of :meth:`score` (see :func:`reduce_pixels`).
        progress: report passes over more than one batch (:mod:`medactive.progress`: a bar on
            a terminal, plain lines otherwise).
        labeled_idx: the round's labeled slices, what DAL's discriminator (field
            ``"dal_unlabeled"``, on the bottleneck embeddings) is trained against.
        channels_last: run the deterministic passes (``"probas"``, ``"embeddings"``) on a
            copy of ``net`` with channels-last weights (the same outputs up to float rounding,
            about 1e-7; faster on CPU). The copy is made on first use, so train ``net`` no
            further while these predictions are in use.

    Example:
        >>> preds = task.predictions(model, seed=0)  # doctest: +SKIP
        >>> preds.score(entropy, "probas", np.arange(10))  # doctest: +SKIP
        array([...])  # 10 slice scores
    """

    def __init__(self, net: UNet2D, images: torch.Tensor, *, seed: int = 0,
                 device: torch.device | str = "cpu", batch_size: int = 64,
                 n_mc_samples: int = 20, reduction: str = "mean", progress: bool = False,
                 labeled_idx: np.ndarray | None = None, channels_last: bool = True) -> None:
        reduction = check_reduction(reduction)
        self.net = net
        self.images = images
        self.seed = int(seed)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.n_mc_samples = int(n_mc_samples)
        self.reduction = reduction
        self.n_pool = int(images.shape[0])
        self.progress = bool(progress)
        self._embeddings: dict[int, np.ndarray] = {}
        self._eval_copy: UNet2D | None = None
        self.channels_last = bool(channels_last)
        self._dal = discrepancy_providers(self.n_pool, labeled_idx, seed=self.seed,
                                          embeddings=self._get_embeddings)["dal_unlabeled"]

    # ---------------------------------------------------------------- streaming
    def _chunk(self, field: str) -> int:
        c = self.net.n_classes
        h, w = self.images.shape[-2:]
        t = {"mc_probas": self.n_mc_samples, "tta_probas": self.n_augmentations}.get(field, 1)
        return max(1, min(self.batch_size, _MAX_BATCH_ELEMENTS // (c * h * w * t)))

    def _batches(self, field: str, idx: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(batch number, [b, c, h, w(, t)] float32 array)`` for ``idx`` in order."""
        if field in CLASSIFICATION_ONLY:
            raise ConfigError(CLASSIFICATION_ONLY[field])
        if field not in ("probas", "mc_probas", "tta_probas"):
            raise KeyError(f"unknown dense prediction field {field!r}; known: "
                           f"{', '.join(FIELDS)}")
        if field == "mc_probas" and self.n_mc_samples < 1:
            raise ConfigError(f"n_mc_samples must be at least 1, got {self.n_mc_samples}")
        chunk = self._chunk(field)
        what = {"mc_probas": "MC-dropout passes", "tta_probas": "test-time augmentations"
                }.get(field, "predictions")
        bar = progress_bar(idx.size, desc=f"scoring {idx.size} slices ({what})", unit="slice",
                           enabled=self.progress and idx.size > chunk)
        try:
            for number, start in enumerate(range(0, idx.size, chunk)):
                rows = idx[start:start + chunk]
                x = self.images[torch.as_tensor(rows)].to(self.device)
                if field == "probas":
                    yield number, self._probas(x)
                elif field == "tta_probas":  # flips / 90° rotations, mapped back (tasks.tta)
                    self.net.eval()
                    yield number, segmentation_tta(self.net, x, rows, seed=self.seed,
                                                   n_augmentations=self.n_augmentations)
                else:
                    yield number, self._mc_probas(x, rows)
                bar.update(len(x))
        finally:
            bar.close()

    def _eval_net(self) -> UNet2D:
        """The network of the deterministic passes: a channels-last copy (made once)."""
        self.net.eval()
        if not self.channels_last:
            return self.net
        if self._eval_copy is None:
            self._eval_copy = copy.deepcopy(self.net).to(memory_format=torch.channels_last)
        return self._eval_copy

    @torch.no_grad()
    def _probas(self, x: torch.Tensor) -> np.ndarray:
        return torch.softmax(self._eval_net()(x), dim=1).contiguous().cpu().numpy()

    @torch.no_grad()
    def _mc_probas(self, x: torch.Tensor, rows: np.ndarray) -> np.ndarray:
        """``[b, c, h, w, t]`` MC-dropout passes of slices ``rows`` (pool indices) ``x``."""
        self.net.eval()
        seeds = [derive_seed(self.seed, "mc", int(i)) for i in rows]
        with per_sample_dropout(self.net, seeds):
            passes = [torch.softmax(self.net(x), dim=1).cpu().numpy()
                      for _ in range(self.n_mc_samples)]
        return np.stack(passes, axis=-1)

    # ---------------------------------------------------------------- Predictions API
    def score(self, fn: Callable[[np.ndarray], np.ndarray], field: str, idx: np.ndarray,
              ) -> np.ndarray:
        """Slice scores ``[n]``: ``fn`` per pixel on ``field``, reduced per slice.

        Args:
            fn: ``[b, c, h, w]`` (``"probas"``) or ``[b, c, h, w, t]`` (``"mc_probas"``) →
                ``[b, h, w]`` pixel scores (or already ``[b]``).
            field: ``"probas"`` or ``"mc_probas"`` (a per-slice field such as
                ``"dal_unlabeled"`` is scored as it is, without pixels to reduce).
            idx: ``[n]`` pool-absolute indices.
        """
        idx = np.asarray(idx, dtype=np.int64)
        if field in SCORE_FIELDS:
            return np.asarray(fn(self.get(field, idx)), dtype=np.float64)
        out = np.empty(idx.size, dtype=np.float64)
        pos = 0
        for _, values in self._batches(field, idx):
            pixel = np.asarray(fn(values), dtype=np.float64)
            if pixel.ndim == 1:
                scores = pixel
            else:
                foreground = None
                if self.reduction == "foreground":
                    background = values[:, 0].mean(axis=-1) if field != "probas" \
                        else values[:, 0]
                    foreground = 1.0 - background
                    if pixel.shape[-2:] != foreground.shape[-2:]:
                        raise ValueError(f"pixel scores of shape {pixel.shape} do not end with "
                                         f"the image size {foreground.shape[-2:]}")
                    foreground = foreground.reshape(foreground.shape[0],
                                                    *([1] * (pixel.ndim - 3)),
                                                    *foreground.shape[-2:])
                scores = reduce_pixels(pixel, self.reduction, foreground)
            out[pos:pos + len(values)] = scores
            pos += len(values)
        return out

    def get(self, field: str, idx: np.ndarray) -> np.ndarray:
        """``"embeddings"`` ``[n, d]``; dense ``"probas"`` ``[n, c, h, w]`` or ``"mc_probas"``
        ``[n, c, h, w, t]`` (for a few slices: prefer :meth:`score` over the pool)."""
        idx = np.asarray(idx, dtype=np.int64)
        if field == "embeddings":
            return self._get_embeddings(idx)
        if field == "dal_unlabeled":
            return self._dal(idx)
        if field == "predicted_loss":  # the module on the U-Net's levels, one value a slice
            return predicted_loss_provider(self.net, features=self.images,
                                           batch_size=self._chunk("probas"))(idx)
        if field in CLASSIFICATION_ONLY:
            raise ConfigError(CLASSIFICATION_ONLY[field])
        parts = [values for _, values in self._batches(field, idx)]
        if not parts:
            c, (h, w) = self.net.n_classes, tuple(self.images.shape[-2:])
            shape = (0, c, h, w) + (
                (self.n_augmentations if field == "tta_probas" else self.n_mc_samples,)
                if field != "probas" else ())
            return np.zeros(shape, dtype=np.float32)
        return np.concatenate(parts)

    @torch.no_grad()
    def _get_embeddings(self, idx: np.ndarray) -> np.ndarray:
        missing = np.unique([i for i in idx.tolist() if i not in self._embeddings])
        net = self._eval_net()
        for start in range(0, missing.size, self._chunk("probas")):
            batch = missing[start:start + self._chunk("probas")]
            x = self.images[torch.as_tensor(batch)].to(self.device)
            _, _, bottleneck = net.features(x)
            pooled = bottleneck.mean(dim=(2, 3)).cpu().numpy().astype(np.float64)
            self._embeddings.update(zip(batch.tolist(), pooled, strict=True))
        d = self.net.channels[-1]
        if idx.size == 0:
            return np.zeros((0, d))
        return np.stack([self._embeddings[i] for i in idx.tolist()])

    def gradient_embeddings_array(self, idx: np.ndarray) -> np.ndarray:
        """BADGE gradients ``[n, c * d]`` w.r.t. the final 1×1 convolution's weights.

        For slice ``x`` with logits ``z = W h + b`` (per pixel), pseudo-label
        ``ŷ = argmax z`` and per-sample loss ``L = DiceCE(z, ŷ)``, the gradient is
        ``∂L/∂W = Σ_pixels (∂L/∂z) h^T``, a ``[c, d]`` matrix flattened row-major.
        """
        idx = np.asarray(idx, dtype=np.int64)
        c, d = self.net.n_classes, self.net.channels[0]
        out = np.zeros((idx.size, c * d), dtype=np.float64)
        self.net.eval()
        chunk = self._chunk("probas")
        for start in range(0, idx.size, chunk):
            x = self.images[torch.as_tensor(idx[start:start + chunk])].to(self.device)
            with torch.no_grad():
                logits, feats, _ = self.net.features(x)
            z = logits.detach().requires_grad_(True)
            with torch.enable_grad():
                loss = dice_ce_per_sample(z, z.argmax(dim=1)).sum()
                (grad,) = torch.autograd.grad(loss, z)
            emb = torch.einsum("bchw,bdhw->bcd", grad, feats)
            out[start:start + len(x)] = emb.reshape(len(x), c * d).cpu().numpy()
        return out

    def gradient_embedding(self, idx: np.ndarray):
        """BADGE's embedding of ``idx`` as a ``DenseEmbedding`` ``[n, c * d]``."""
        from medactive.selection.embedding import DenseEmbedding

        return DenseEmbedding(self.gradient_embeddings_array(idx))
