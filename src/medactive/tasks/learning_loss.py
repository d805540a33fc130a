"""Learning loss (Yoo & Kweon 2019): a loss-prediction module trained beside the model.

A small module reads several intermediate feature maps of the target model and predicts the
target loss of an input without its label (performance estimation, survey §3.1.3). It is
trained jointly with the model; the ``learning_loss`` strategy
(:mod:`medactive.strategies.learning_loss`) queries the unlabeled samples of highest predicted
loss, reading only the prediction field ``"predicted_loss"`` ``[n]``.

- :class:`LossPredictionModule`: per tapped feature map, global average pooling -> linear ->
  ReLU (128 units, the paper's), concatenated -> linear -> one scalar.
- :func:`margin_ranking_loss`: the paper's pairwise loss. The mini-batch of size ``B`` is split
  into ``B / 2`` pairs ``(i, j)`` (first half against second half) and each pair costs
  ``max(0, -s_ij * (l̂_i - l̂_j) + ξ)`` with ``s_ij = +1`` if ``l_i > l_j`` else ``-1``,
  averaged over pairs (the paper's ``2/B`` sum), margin ``ξ = 1``. The training objective is
  ``mean_i l_i + λ * ranking`` with ``λ = 1``; the true losses ``l`` are detached targets.
- Feature taps (:func:`tap_points`, :class:`FeatureTaps`): forward hooks registered around one
  forward pass and removed after it, so backbones are unchanged and a model with a module
  deep-copies, pickles and saves as before. Finetune mode taps the CNN's intermediate blocks
  (the four conv blocks of ``smallcnn``, ``layer1``–``layer4`` of a ResNet; another backbone:
  its output features); frozen mode taps the head's input embeddings and its hidden layer
  (MLP head).
- :func:`attach_loss_module` puts the module on the model as the submodule ``loss_module``: it
  is saved in ``model.state_dict()`` with the round's model (keys ``loss_module.*``);
  :func:`attach_from_state` rebuilds it from such a state before loading (a state without
  those keys loads as before).

The paper stops the module's gradient into the target model after 120 of 200 epochs; here the
same fraction (:data:`STOP_FRACTION` = 0.6) of the round's epochs (frozen heads: steps), see
:func:`stop_epoch`: from then on the tapped features are detached and only the module learns
from the ranking term.

With ``--learning-loss`` off none of this runs: training, its random stream and the model's
state are those of a plain run.

References:
    Yoo and Kweon, "Learning loss for active learning", CVPR 2019.

Example:
    >>> import torch
    >>> margin_ranking_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0])).item()
    0.0
    >>> margin_ranking_loss(torch.tensor([0.0, 0.5]), torch.tensor([1.0, 0.0])).item()
    1.5
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Self

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medactive.data.tensors import model_inputs
from medactive.errors import ConfigError

#: units of each branch's linear layer (the paper's 128)
HIDDEN = 128
#: the ranking loss's margin ξ and weight λ (the paper's 1 and 1)
MARGIN = 1.0
WEIGHT = 1.0
#: the paper stops the module's gradient into the model after 120 of 200 epochs
STOP_FRACTION = 120 / 200
#: the submodule's attribute on the model (and its state-dict prefix)
ATTRIBUTE = "loss_module"


class LossPredictionModule(nn.Module):
    """Predicted loss ``[n]`` from feature maps ``[n, C_k, ...]`` (or vectors ``[n, C_k]``).

    Args:
        in_features: channels ``C_k`` of each tapped feature.
        hidden: units of each branch.
    """

    def __init__(self, in_features: Sequence[int], hidden: int = HIDDEN) -> None:
        super().__init__()
        if not in_features:
            raise ValueError("a loss-prediction module needs at least one feature")
        self.branches = nn.ModuleList(nn.Linear(int(c), hidden) for c in in_features)
        self.out = nn.Linear(hidden * len(in_features), 1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(features) != len(self.branches):
            raise ValueError(f"{len(self.branches)} features expected, got {len(features)}")
        pooled = [f.flatten(2).mean(dim=2) if f.ndim > 2 else f for f in features]
        h = torch.cat([F.relu(b(p)) for b, p in zip(self.branches, pooled)], dim=1)
        return self.out(h).squeeze(1)


def margin_ranking_loss(predicted: torch.Tensor, target: torch.Tensor, *,
                        margin: float = MARGIN) -> torch.Tensor:
    """The paper's pairwise ranking loss of predicted losses ``[B]`` against true ones ``[B]``.

    Pairs are ``(i, i + B // 2)``; with an odd ``B`` the last sample is left out; ``B < 2``
    gives 0. ``target`` is detached.
    """
    half = predicted.shape[0] // 2
    if half == 0:
        return predicted.sum() * 0.0
    target = target.detach()
    p_i, p_j = predicted[:half], predicted[half:2 * half]
    sign = torch.where(target[:half] > target[half:2 * half], 1.0, -1.0).to(predicted.dtype)
    return torch.clamp(margin - sign * (p_i - p_j), min=0.0).mean()


def stop_epoch(epochs: int) -> int:
    """The first epoch (0-based) whose features are detached: ``round(0.6 * epochs)``."""
    return round(STOP_FRACTION * epochs)


def _is_unet(model: nn.Module) -> bool:
    """A :class:`~medactive.tasks.segmentation.unet.UNet2D` (by its parts: ``tasks`` does not
    import the segmentation package)."""
    return all(isinstance(getattr(model, a, None), nn.ModuleList) for a in ("down", "up"))


def tap_points(model: nn.Module) -> list[tuple[str, str]]:
    """``(module name, "input" | "output")`` of the features a module on ``model`` reads.

    ``model`` is a :class:`~medactive.tasks.classification.model.Classifier`: a frozen-mode head
    (its input embeddings, plus the hidden layer's output for an MLP), else a CNN (the outputs
    of its intermediate blocks; the backbone's output when no block is recognised); or a
    :class:`~medactive.tasks.segmentation.unet.UNet2D` (the output of each encoder level, then
    of each decoder level).
    """
    from medactive.encoders.backbones import SmallCNN

    if _is_unet(model):  # every encoder and decoder level
        return [(f"{part}.{i}", "output") for part in ("down", "up")
                for i in range(len(getattr(model, part)))]
    backbone = model.backbone
    if not any(isinstance(m, nn.modules.conv._ConvNd) for m in backbone.modules()):
        # a head on embeddings: FeatureIdentity (no weights) or HiddenLayer (linear -> ReLU)
        has_weights = any(True for _ in backbone.parameters())
        return [("backbone", "input"), *([("backbone", "output")] if has_weights else [])]
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if isinstance(module, SmallCNN):
            return [(f"{name}.body.{i}", "output") for i, m in enumerate(module.body)
                    if isinstance(m, nn.ReLU)]
    layers = [next((n for n in modules if n.startswith("backbone.")
                    and n.rsplit(".", 1)[-1] == f"layer{k}"), None) for k in range(1, 5)]
    if all(layers):
        return [(n, "output") for n in layers]
    return [("backbone", "output")]


class FeatureTaps:
    """Forward hooks on ``points`` of ``model`` for one forward pass (a context manager).

    ``features`` holds the tapped tensors in ``points``' order after the pass; the hooks are
    removed on exit.
    """

    def __init__(self, model: nn.Module, points: Sequence[tuple[str, str]]) -> None:
        self.model, self.points = model, list(points)
        self._values: dict[int, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> Self:
        modules = dict(self.model.named_modules())
        for k, (name, where) in enumerate(self.points):
            if where == "input":
                handle = modules[name].register_forward_pre_hook(partial(self._keep_input, k))
            else:
                handle = modules[name].register_forward_hook(partial(self._keep_output, k))
            self._handles.append(handle)
        return self

    def _keep_input(self, k: int, _module: nn.Module, args: tuple) -> None:
        self._values[k] = args[0]

    def _keep_output(self, k: int, _module: nn.Module, _args: tuple, out: torch.Tensor) -> None:
        self._values[k] = out

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def features(self) -> list[torch.Tensor]:
        missing = [self.points[k][0] for k in range(len(self.points)) if k not in self._values]
        if missing:
            raise RuntimeError(f"no forward pass went through {', '.join(missing)}")
        return [self._values[k] for k in range(len(self.points))]


def loss_module(model: nn.Module) -> LossPredictionModule | None:
    """The module attached to ``model`` (``None``: trained without ``--learning-loss``)."""
    module = getattr(model, ATTRIBUTE, None)
    return module if isinstance(module, LossPredictionModule) else None


def attach_loss_module(model: nn.Module, example: torch.Tensor, *, seed: int,
                       hidden: int = HIDDEN) -> LossPredictionModule:
    """Attach a fresh module to ``model`` (kept when it has one already, e.g. fine-tuning
    from the previous round's model) and return it.

    ``example`` (a few inputs on the model's device) goes through the model once in eval mode
    without gradient to read the tapped channels; the module's initialisation depends on
    ``seed`` only and leaves torch's global random state alone.
    """
    existing = loss_module(model)
    if existing is not None:
        return existing
    was_training = model.training
    with torch.no_grad(), FeatureTaps(model.eval(), tap_points(model)) as taps:
        model(example)
        channels = [int(f.shape[1]) for f in taps.features]
    model.train(was_training)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = LossPredictionModule(channels, hidden)
    device = next(model.parameters()).device
    setattr(model, ATTRIBUTE, module.to(device))
    return module


def attach_from_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Before ``model.load_state_dict(state)``: attach a module shaped like the one ``state``
    holds (keys ``loss_module.*``); nothing when it holds none."""
    prefix = f"{ATTRIBUTE}.branches."
    widths: dict[int, tuple[int, int]] = {}
    for key, value in state.items():
        if key.startswith(prefix) and key.endswith(".weight"):
            widths[int(key[len(prefix):].split(".")[0])] = tuple(value.shape)
    if not widths or loss_module(model) is not None:
        return
    shapes = [widths[k] for k in sorted(widths)]
    module = LossPredictionModule([c for _, c in shapes], hidden=shapes[0][0])
    setattr(model, ATTRIBUTE, module)


class RankingTerm:
    """The learning-loss term of one training step, around the step's forward pass.

    Usage (the task loss line itself is unchanged)::

        term = RankingTerm.start(model, detach=epoch >= stop_epoch(epochs))  # None when off
        loss = F.cross_entropy(model(x), y)
        if term is not None:
            loss = loss + term.finish(y)

    The hooks also capture the logits (the output of ``model.fc``); :meth:`finish` takes the
    per-sample cross-entropy of those logits as the true losses ``l`` and returns
    ``λ * margin_ranking_loss(module(features), l)``. ``detach``: the features reach the module
    without gradient into the model (after :func:`stop_epoch`).
    """

    def __init__(self, model: nn.Module, module: LossPredictionModule, *, detach: bool) -> None:
        self.module, self.detach = module, detach
        logits = "head" if _is_unet(model) else "fc"  # U-Net's 1x1 conv, else the linear
        self.taps = FeatureTaps(model, [*tap_points(model), (logits, "output")]).__enter__()

    @classmethod
    def start(cls, model: nn.Module, *, detach: bool) -> RankingTerm | None:
        module = loss_module(model)
        return None if module is None else cls(model, module, detach=detach)

    def finish(self, labels: torch.Tensor, *, ignore_index: int = -100) -> torch.Tensor:
        """``labels``: ``[B]`` classes, or ``[B, H, W]`` label maps (segmentation: the true
        loss of an image is the mean cross-entropy of its pixels, those equal to
        ``ignore_index`` left out; an image without labelled pixels has loss 0)."""
        try:
            *features, logits = self.taps.features
        finally:
            self.taps.__exit__()
        if self.detach:
            features = [f.detach() for f in features]
        true = F.cross_entropy(logits, labels, reduction="none", ignore_index=ignore_index)
        if true.ndim > 1:
            counted = (labels != ignore_index).flatten(1).sum(dim=1).clamp(min=1)
            true = true.flatten(1).sum(dim=1) / counted
        return WEIGHT * margin_ranking_loss(self.module(features), true)


@torch.no_grad()
def predicted_losses(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode logits ``[n, c]`` and predicted losses ``[n]`` of inputs ``x`` (one pass).

    Raises:
        ConfigError: ``model`` was trained without a loss-prediction module.
    """
    module = loss_module(model)
    if module is None:
        raise ConfigError(NEEDS_FLAG)
    model.eval()
    with FeatureTaps(model, tap_points(model)) as taps:
        logits = model(x)
        return logits, module(taps.features)


def predicted_loss_provider(model: nn.Module, *, features: np.ndarray | None = None,
                            split=None, image_size: int | None = None, batch_size: int = 512,
                            device: str = "cpu"):
    """The ``"predicted_loss"`` field's provider: ``idx [n] -> [n]`` float64 predicted losses
    of pool rows ``idx``, from ``features`` (ready network inputs: frozen mode's standardised
    embeddings ``[n_pool, d]``, a U-Net's slices ``[n_pool, 1, s, s]``) or else the images of
    ``split`` (resized to ``image_size``).

    Asking it for values of a model without a module raises :class:`ConfigError`
    (:data:`NEEDS_FLAG`); building it never does.
    """

    def provide(idx: np.ndarray) -> np.ndarray:
        if loss_module(model) is None:
            raise ConfigError(NEEDS_FLAG)
        idx = np.asarray(idx, dtype=np.int64)
        out = []
        on = next(model.parameters()).device if features is not None else device
        for _, x in model_inputs(idx, features=features, split=split, image_size=image_size,
                                 batch_size=batch_size):
            out.append(predicted_losses(model, x.to(on))[1].double().cpu().numpy())
        return check_finite(np.concatenate(out) if out else np.zeros(0))

    return provide


#: the one line for a learning-loss query on a model trained without the module
NEEDS_FLAG = ("learning_loss needs --learning-loss (train option learning_loss = true): the "
              "round's model must be trained with its loss-prediction module")


def check_finite(values: np.ndarray) -> np.ndarray:
    """``values`` as float64, refusing NaN / inf (a diverged module)."""
    out = np.asarray(values, dtype=np.float64)
    if out.size and not np.isfinite(out).all():
        raise FloatingPointError("the loss-prediction module gave non-finite values; lower the "
                                 "learning rate")
    return out


__all__ = ["HIDDEN", "MARGIN", "NEEDS_FLAG", "STOP_FRACTION", "WEIGHT", "FeatureTaps",
           "LossPredictionModule", "RankingTerm", "attach_from_state", "attach_loss_module",
           "check_finite", "loss_module", "margin_ranking_loss", "predicted_loss_provider", "predicted_losses",
           "stop_epoch", "tap_points"]
