"""Prediction fields from a PyTorch model of your own, for any strategy.

Strategies read model outputs as arrays (:class:`~medactive.predictions.Predictions`): class
probabilities ``"probas"`` ``[n, c]``, MC-dropout stacks ``"mc_probas"`` ``[n, c, t]`` and
penultimate embeddings ``"embeddings"`` ``[n, d]``. :func:`model_predictions` computes them for
any ``nn.Module`` that maps a batch of inputs to class logits, over a DataLoader of the pool:

- ``"probas"``: softmax of the model's output in eval mode;
- ``"embeddings"``: captured by a forward hook on a named module, ``embedding_layer="fc"``
  (the *input* of module ``fc``: for a final linear layer, the penultimate features) or
  ``"pool:output"`` (the output of module ``pool``); flattened to one row per sample;
- ``"mc_probas"``: ``mc_samples`` stochastic passes with dropout on (Gal et al. 2017).
  ``mc_dropout="full"`` runs the whole model ``t`` times with every dropout module in train
  mode (and everything else, batch norm included, in eval mode). ``mc_dropout="head"`` runs the
  model once, keeps the input of module ``head`` and runs only that module ``t`` times with its
  dropout on: the cheap form when the dropout sits in the head, as in medactive's own
  classifier. ``head`` must be the module whose output is the model's output (the logits).

The passes draw their dropout masks from ``seed`` (inside :func:`torch.random.fork_rng`, so the
caller's random state is left as it was), so the same seed gives the same stacks; the model's
train/eval modes are restored afterwards. This module needs torch and lives outside the query
side (:mod:`medactive.strategies` and friends read only the arrays).

:func:`fold_batch_norm` gives the eval-mode copy that medactive's own pool passes run on
(probabilities, embeddings, the classifier's MC head): each batch norm folded into the
convolution before it, the same outputs up to float rounding without the batch-norm pass
(1.45x the images/s of the cpu-preset CNN; ``benchmarks/inference_speed.py``, issue 16).

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(2, 2))
    >>> with torch.no_grad():
    ...     _ = model[0].weight.copy_(torch.eye(2)); _ = model[0].bias.zero_()
    >>> loader = [torch.tensor([[0.0, 0.0], [2.0, 0.0]])]
    >>> p = model_predictions(model, loader, fields=("probas",))
    >>> p.get("probas", [0, 1]).round(3).tolist()
    [[0.5, 0.5], [0.881, 0.119]]
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medactive.errors import ConfigError
from medactive.predictions import FIELDS, ArrayPredictions

MC_DROPOUT_MODES = ("head", "full")

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with batch norm folded into the convolutions.

    In eval mode a batch norm is the per-channel affine map ``gamma (z - mean) / sqrt(var +
    eps) + beta`` of its running statistics; when it directly follows a convolution (in
    execution order within :class:`~torch.nn.Sequential` containers, nested ones included,
    with at most dropout layers between them, which are the identity in eval mode), the map is
    merged into that convolution's weights and bias (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`)
    and the norm, with the dropout layers in between, becomes :class:`~torch.nn.Identity`.
    Anything else (a norm behind a ReLU, a transposed convolution, a norm without running
    statistics, containers with their own ``forward``) is copied as it is.

    The copy computes the deterministic eval-mode pass of ``model`` up to float32 rounding
    (about 1e-7 relative per layer); it is for that pass only: the dropout layers it dropped
    cannot be switched on for MC passes, so run those on ``model``. ``model`` itself (its
    weights, modes, hooks) is left as it was.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1), nn.ReLU())
        >>> " ".join(type(m).__name__ for m in fold_batch_norm(net))
        'Conv2d Identity ReLU'
    """
    folded = copy.deepcopy(model).eval()
    for container in [m for m in folded.modules() if _plain_sequential(m)]:
        pending = None  # (parent, name, conv) waiting for its norm, and the dropouts since
        skipped: list[tuple[nn.Module, str]] = []
        for parent, name, child in _execution_order(container):
            if isinstance(child, _CONVS):
                pending, skipped = (parent, name, child), []
            elif isinstance(child, nn.modules.dropout._DropoutNd) and pending is not None:
                skipped.append((parent, name))
            elif (isinstance(child, _NORMS) and pending is not None
                  and child.running_mean is not None
                  and child.num_features == pending[2].out_channels):
                conv_parent, conv_name, conv = pending
                setattr(conv_parent, conv_name,
                        torch.nn.utils.fusion.fuse_conv_bn_eval(conv, child))
                for drop_parent, drop_name in [*skipped, (parent, name)]:
                    setattr(drop_parent, drop_name, nn.Identity())
                pending, skipped = None, []
            else:
                pending, skipped = None, []
    return folded


def _plain_sequential(module: nn.Module) -> bool:
    """A Sequential whose ``forward`` runs its children in order (not overridden)."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _execution_order(container: nn.Sequential) -> Iterator[tuple[nn.Module, str, nn.Module]]:
    """``(parent, name, leaf)`` in the order ``container`` runs them, through nested plain
    Sequentials (anything else is one opaque leaf)."""
    for name, child in list(container.named_children()):
        if _plain_sequential(child):
            yield from _execution_order(child)
        else:
            yield container, name, child


def model_predictions(model: nn.Module, loader: Iterable[Any], *,
                      fields: Sequence[str] = ("probas",), embedding_layer: str | None = None,
                      mc_samples: int = 20, mc_dropout: str = "full", head: str | None = None,
                      device: str | torch.device = "cpu", seed: int = 0) -> ArrayPredictions:
    """Compute the prediction ``fields`` of ``model`` over every batch of ``loader``.

    Args:
        model: maps a batch of inputs to class logits ``[b, c]``.
        loader: yields input batches, or tuples / lists whose first element is the batch (a
            DataLoader over the pool, *not* shuffled: row ``i`` of each field is the ``i``-th
            sample the loader yields, i.e. pool index ``i``).
        fields: any of ``"probas"``, ``"mc_probas"``, ``"embeddings"``.
        embedding_layer: ``"NAME"`` or ``"NAME:input"`` (the input of module ``NAME``) or
            ``"NAME:output"``; needed for ``"embeddings"``. Names as in
            ``model.named_modules()`` (e.g. ``"fc"``, ``"head.1"``).
        mc_samples: stochastic passes ``t`` for ``"mc_probas"`` (at least 2).
        mc_dropout: ``"full"`` (every dropout module on, whole model ``t`` times) or
            ``"head"`` (module ``head`` alone ``t`` times on its captured input).
        head: the module re-run by ``mc_dropout="head"``; its output must be the logits.
        device: where the model runs.
        seed: seeds the dropout masks of the MC passes.

    Returns:
        :class:`~medactive.predictions.ArrayPredictions` holding the fields asked for.

    Raises:
        ConfigError: an unknown field, a layer name the model does not have (the message lists
            some that it has), MC passes asked of a model (or head) without dropout, fewer than
            2 passes, an unknown ``mc_dropout``; or outputs that are NaN or infinite.
    """
    fields = tuple(fields)
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown prediction field(s) {', '.join(map(repr, unknown))}; "
                          f"choose from {', '.join(FIELDS)}")
    modules = dict(model.named_modules())
    embed = _hook_target(embedding_layer, modules) if "embeddings" in fields else None
    if "embeddings" in fields and embed is None:
        raise ConfigError("'embeddings' needs embedding_layer='NAME' (the input of module NAME, "
                          "e.g. the final linear layer) or 'NAME:output'")
    head_module = None
    if "mc_probas" in fields:
        if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 2:
            raise ConfigError(f"mc_samples must be an integer >= 2, got {mc_samples!r}")
        if mc_dropout not in MC_DROPOUT_MODES:
            raise ConfigError(f"mc_dropout must be one of {', '.join(MC_DROPOUT_MODES)}, got "
                              f"{mc_dropout!r}")
        if mc_dropout == "head":
            if head is None:
                raise ConfigError("mc_dropout='head' needs head='NAME': the module that maps "
                                  "the embedding to the logits, re-run with its dropout on")
            head_module = _module(head, modules)
        scope = head_module if head_module is not None else model
        if not _dropouts(scope):
            raise ConfigError(f"MC dropout needs dropout layers in "
                              f"{'module ' + repr(head) if head_module is not None else 'the model'}"
                              "; it has none (every pass would be the same)")
    was_training = {m: m.training for m in model.modules()}
    model.to(device)
    out: dict[str, list[np.ndarray]] = {f: [] for f in fields}
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            for batch in loader:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                x = torch.as_tensor(x).to(device)
                _batch_fields(model, x, fields, embed, head_module, mc_samples, mc_dropout, out)
    finally:
        for module, training in was_training.items():
            module.train(training)
    arrays = {f: np.concatenate(v) if v else np.zeros((0,)) for f, v in out.items()}
    for name, values in arrays.items():
        if values.size and not np.all(np.isfinite(values)):
            raise ConfigError(f"the model's {name} contain {int(np.sum(~np.isfinite(values)))} "
                              "NaN or infinite values; check the model and its inputs")
    return ArrayPredictions(**arrays)


def _batch_fields(model, x, fields, embed, head_module, mc_samples, mc_dropout, out) -> None:
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    if embed is not None:
        module, side = embed
        hooks.append(module.register_forward_hook(
            lambda _m, inputs, output: captured.__setitem__(
                "embeddings", (inputs[0] if side == "input" else output).detach())))
    if head_module is not None:
        hooks.append(head_module.register_forward_hook(
            lambda _m, inputs, output: captured.__setitem__("head_input", inputs[0].detach())))
    model.eval()
    try:
        logits = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    if "probas" in fields:
        out["probas"].append(torch.softmax(logits.float(), dim=1).cpu().double().numpy())
    if "embeddings" in fields:
        emb = captured["embeddings"]
        out["embeddings"].append(emb.reshape(emb.shape[0], -1).float().cpu().numpy())
    if "mc_probas" in fields:
        scope = head_module if head_module is not None else model
        for module in _dropouts(scope):
            module.train(True)
        passes = []
        for _ in range(mc_samples):
            y = head_module(captured["head_input"]) if head_module is not None else model(x)
            passes.append(torch.softmax(y.float(), dim=1))
        model.eval()
        out["mc_probas"].append(torch.stack(passes, dim=-1).cpu().double().numpy())


def _dropouts(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


def _module(name: str, modules: dict[str, nn.Module]) -> nn.Module:
    if name not in modules or name == "":
        some = [n for n in modules if n][:8]
        raise ConfigError(f"the model has no module {name!r}; it has e.g. {', '.join(some)}")
    return modules[name]


def _hook_target(spec: str | None, modules: dict[str, nn.Module]
                 ) -> tuple[nn.Module, str] | None:
    if spec is None:
        return None
    name, _, side = spec.partition(":")
    side = side or "input"
    if side not in ("input", "output"):
        raise ConfigError(f"embedding_layer {spec!r}: say NAME, NAME:input or NAME:output")
    return _module(name, modules), side
