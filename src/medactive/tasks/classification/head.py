"""Frozen-feature rounds: a small head trained on a fixed encoder's cached embeddings.

With ``--train-mode frozen`` the encoder never changes, so its pool, val and test embeddings are
computed once (:func:`medactive.encoders.cached_embeddings`) and each AL round trains only a
head on them, in seconds. The head is a :class:`~medactive.tasks.classification.model.Classifier`
whose "backbone" works on embeddings instead of images: the identity (``"linear"``: logistic
regression on the features) or one hidden layer with ReLU (``"mlp"``). Its dropout sits before
the last layer as for the CNNs, so MC-dropout strategies (:meth:`Classifier.mc_head`) get a
spread and BADGE's gradient embedding factorises over the head's penultimate input.

Features are standardised per dimension with the pool's mean and standard deviation (no label
is read; :class:`Standardiser`). Training: Adam on cross-entropy for a fixed number of steps of
``min(batch_size, n)`` labelled embeddings (reshuffled passes, so a round with 20 labels trains
as long as one with 2,000), keeping the checkpoint with the best validation metric like the CNN
path. With a :class:`~medactive.tasks.classification.semi_supervised.FixMatchConfig` each step also draws
``mu * B`` unlabelled pool embeddings and adds ``lambda_u`` times FixMatch's masked consistency
loss between a weak and a strong feature-space view
(:func:`~medactive.tasks.classification.semi_supervised.feature_weak` /
:func:`~medactive.tasks.classification.semi_supervised.feature_strong`). Heads train on the CPU: a round
takes seconds, and a seed gives bit-identical heads with or without a GPU.

References:
    Sohn et al., "FixMatch", NeurIPS 2020 (the unlabelled loss). Gal et al., "Deep Bayesian
    active learning with image data", ICML 2017 (MC dropout). Lüth et al., "Navigating the
    pitfalls of active learning evaluation", NeurIPS 2023 (frozen self-supervised features and
    semi-supervision as the baselines AL must be measured against).

Example:
    >>> import numpy as np
    >>> x = np.array([[-1.0, 0.0], [-2.0, 0.0], [1.0, 0.0], [2.0, 0.0]], dtype=np.float32)
    >>> head = fit_head(x, np.array([0, 0, 1, 1]), n_classes=2,
    ...                 config=HeadConfig(steps=100, dropout=0.0), seed=0)
    >>> head_probas(head, x).argmax(1).tolist()
    [0, 0, 1, 1]
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medactive._validation import config_from_options
from medactive.errors import ConfigError
from medactive.tasks.classification.model import Classifier, mc_row_seeds
from medactive.tasks.evidential import evidential_loss
from medactive.tasks.learning_loss import RankingTerm, attach_loss_module, stop_epoch

if TYPE_CHECKING:
    from medactive.tasks.classification.semi_supervised import FixMatchConfig

HEAD_KINDS = ("linear", "mlp")


@dataclass(frozen=True)
class HeadConfig:
    """How frozen-mode rounds train their head.

    Attributes:
        kind: ``"linear"`` (dropout + linear layer on the standardised embeddings) or ``"mlp"``
            (linear -> ReLU -> dropout -> linear).
        hidden: width of the MLP's hidden layer (ignored for ``"linear"``).
        dropout: dropout before the last layer; > 0 so MC-dropout strategies (DBAL, BALD,
            mean variance) see a spread.
        lr: Adam learning rate.
        weight_decay: Adam's L2 penalty (``weight_decay`` argument).
        steps: optimiser steps per round, whatever the number of labels.
        batch_size: labelled embeddings per step (all of them when fewer).
        eval_every: validate every this many steps (and after the last) to keep the best head.
        standardise: standardise features with the pool's mean and standard deviation.
        evidential: train with Sensoy et al.'s evidential loss (a Dirichlet head,
            :mod:`medactive.tasks.evidential`; an epoch is a pass over the labelled embeddings);
            set from the run's ``--evidential``.
    """

    kind: str = "linear"
    hidden: int = 256
    dropout: float = 0.2
    lr: float = 1e-2
    weight_decay: float = 1e-4
    steps: int = 500
    batch_size: int = 64
    eval_every: int = 25
    standardise: bool = True
    evidential: bool = False

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise ConfigError(f"head kind must be one of {', '.join(HEAD_KINDS)}, got "
                              f"{self.kind!r}")
        for name in ("hidden", "steps", "batch_size", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"head {name} must be a positive integer, got {value!r}")
        if not isinstance(self.evidential, bool):
            raise ConfigError(f"head evidential must be true or false, got {self.evidential!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"head dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise ConfigError(f"head {name} must be a {'positive' if name == 'lr' else 'non-negative'}"
                                  f" number, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, options: dict[str, Any] | str | None, *, source: str = "head"
                  ) -> HeadConfig:
        """Defaults overridden by ``options`` (a dict of fields, or just the ``kind``).

        Raises:
            ConfigError: an unknown field or a bad value.
        """
        if options is None:
            options = {}
        elif isinstance(options, str):
            options = {"kind": options}
        elif not isinstance(options, dict):
            raise ConfigError(f"{source}: expected a head kind or a table of HeadConfig "
                              f"fields, got {options!r}")
        return config_from_options(cls, options, source=source, what="head")


class Standardiser:
    """Per-dimension ``(x - mean) / std`` fitted on pool embeddings (labels are never read).

    Dimensions with (near) zero spread are only centred.

    Args:
        mean: ``[d]`` per-dimension mean.
        std: ``[d]`` per-dimension standard deviation (already floored).
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def fit(cls, features: np.ndarray) -> Standardiser:
        """Mean and standard deviation of ``features`` ``[n, d]`` (float64 accumulation)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"features must be a non-empty [n, d] array, got {x.shape}")
        mean, std = x.mean(axis=0), x.std(axis=0)
        std = np.where(std > 1e-6 * max(1.0, float(np.abs(x).max())), std, 1.0)
        return cls(mean, std)

    @classmethod
    def identity(cls, d: int) -> Standardiser:
        return cls(np.zeros(d), np.ones(d))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """``[n, d]`` float32 standardised features."""
        return ((np.asarray(features, dtype=np.float32) - self.mean) / self.std).astype(
            np.float32, copy=False)


class HiddenLayer(nn.Module):
    """``linear -> ReLU``: the MLP head's "backbone" (``out_features`` = ``hidden``)."""

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, hidden)
        self.out_features = int(hidden)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.relu(self.linear(h))


class FeatureIdentity(nn.Module):
    """The linear head's "backbone": passes embeddings ``[n, d]`` through."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.out_features = int(in_features)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h


def build_head(config: HeadConfig, in_features: int, n_classes: int, *, seed: int
               ) -> Classifier:
    """A freshly initialised head; its initialisation depends on ``seed`` only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone: nn.Module = (FeatureIdentity(in_features) if config.kind == "linear"
                               else HiddenLayer(in_features, config.hidden))
        return Classifier(backbone, n_classes, config.dropout)


def _dropout(h: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    if p <= 0:
        return h
    keep = torch.rand(h.shape, generator=generator) >= p
    return h * keep / (1.0 - p)


def _logits(model: Classifier, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Training-mode logits with dropout masks drawn from ``generator`` (not torch's global
    generator, so a seed fixes the run)."""
    return model.fc(_dropout(model.features(x), model.dropout_p, generator))


def fit_head(features: np.ndarray, labels: np.ndarray, *, n_classes: int, config: HeadConfig,
             seed: int, validate: Callable[[Classifier], float] | None = None,
             init_model: Classifier | None = None, unlabeled: np.ndarray | None = None,
             semi: FixMatchConfig | None = None, learning_loss: bool = False) -> Classifier:
    """Train a head on labelled embeddings.

    Args:
        features: ``[n, d]`` (standardised) embeddings of the labelled samples.
        labels: ``[n]`` their labels in ``0..n_classes-1``.
        n_classes: number of classes.
        config: the recipe.
        seed: seeds initialisation, batch order, dropout and the unlabelled draws.
        validate: ``head -> score`` (higher better); the best-scoring checkpoint is returned.
        init_model: start from this head (deep-copied) instead of a fresh one.
        unlabeled: ``[m, d]`` embeddings of unlabelled pool samples (with ``semi``).
        semi: FixMatch settings; ``None``: labels only.
        learning_loss: train a loss-prediction module on the head's input (and hidden layer)
            beside it (:mod:`medactive.tasks.learning_loss`; its gradient into the head stops
            after 60% of the steps); not with ``semi``.

    Returns:
        The head (a :class:`Classifier` on embeddings) in eval mode.
    """
    x_all = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32))
    y_all = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if x_all.ndim != 2 or y_all.shape != (x_all.shape[0],):
        raise ValueError(f"features [n, d] and labels [n] expected, got {tuple(x_all.shape)} "
                         f"and {tuple(y_all.shape)}")
    n = x_all.shape[0]
    if n == 0:
        raise ValueError("no labelled samples to train a head on")
    model = (copy.deepcopy(init_model) if init_model is not None
             else build_head(config, x_all.shape[1], n_classes, seed=seed))
    model.cpu().train()
    model.evidential = config.evidential  # its probabilities are alpha / S from now on
    if config.evidential and semi is not None:
        raise ValueError("evidential heads with FixMatch are not supported")
    if learning_loss:  # before the optimiser, which then trains the module too
        if semi is not None:
            raise ValueError("learning_loss with FixMatch is not supported")
        attach_loss_module(model, x_all[:2], seed=seed)
    gen = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    u_all = None
    if semi is not None and unlabeled is not None and len(unlabeled):
        from medactive.tasks.classification.semi_supervised import (
            feature_strong,
            feature_weak,
            fixmatch_unlabeled_loss,
        )

        u_all = torch.as_tensor(np.ascontiguousarray(unlabeled, dtype=np.float32))
    batch = min(config.batch_size, n)
    order, pos = torch.randperm(n, generator=gen), 0
    best_score, best_state = -np.inf, None
    for step in range(config.steps):
        if pos + batch > n:
            order, pos = torch.randperm(n, generator=gen), 0
        rows = order[pos:pos + batch]
        pos += batch
        term = RankingTerm.start(model, detach=step >= stop_epoch(config.steps)) \
            if learning_loss else None
        logits = _logits(model, x_all[rows], gen)
        loss = (evidential_loss(logits, y_all[rows], epoch=(step * batch) // n)
                if config.evidential else F.cross_entropy(logits, y_all[rows]))
        if term is not None:  # Yoo & Kweon 2019: + lambda * margin ranking of predicted losses
            loss = loss + term.finish(y_all[rows])
        if u_all is not None:
            m = min(semi.mu * batch, u_all.shape[0])
            u = u_all[torch.randperm(u_all.shape[0], generator=gen)[:m]]
            weak, strong = feature_weak(u, gen), feature_strong(u, gen)
            # the target comes from the weak view without dropout (the model's own guess);
            # fixmatch_unlabeled_loss detaches it
            unsup, _ = fixmatch_unlabeled_loss(model.fc(model.features(weak)),
                                               _logits(model, strong, gen), semi.threshold)
            loss = loss + semi.lambda_u * unsup
        if not torch.isfinite(loss):
            raise FloatingPointError(f"head loss became {loss.item()} at step {step}; "
                                     "lower the head learning rate")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        last = step == config.steps - 1
        if validate is not None and ((step + 1) % config.eval_every == 0 or last):
            model.eval()
            score = validate(model)
            model.train()
            if score > best_score or best_state is None:
                best_score, best_state = score, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


@torch.no_grad()
def head_outputs(model: Classifier, features: np.ndarray, *, batch_size: int = 8192,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``[n, c]`` (float64) and the head's penultimate input ``[n, d']``
    (float32: the standardised embeddings for a linear head, the hidden layer for an MLP)."""
    model.eval()
    probas, hidden = [], []
    for start in range(0, len(features), batch_size):
        x = torch.as_tensor(np.ascontiguousarray(features[start:start + batch_size],
                                                 dtype=np.float32))
        h = model.features(x)
        probas.append(model.probas(model.fc(h)).double().numpy())
        hidden.append(h.float().numpy())
    if not probas:
        return (np.zeros((0, model.fc.out_features)),
                np.zeros((0, model.fc.in_features), dtype=np.float32))
    return np.concatenate(probas), np.concatenate(hidden)


def head_probas(model: Classifier, features: np.ndarray, *, batch_size: int = 8192,
                ) -> np.ndarray:
    """Class probabilities ``[n, c]`` of the head on ``features`` ``[n, d]``."""
    return head_outputs(model, features, batch_size=batch_size)[0]


@torch.no_grad()
def head_mc_probas(model: Classifier, features: np.ndarray, *, n_samples: int, seed: int,
                   idx: np.ndarray | None = None, batch_size: int = 8192) -> np.ndarray:
    """MC-dropout probabilities ``[n, c, t]`` of the head (``t = n_samples`` masks).

    Args:
        features: ``[n, d]`` pool embeddings of the samples ``idx``.
        idx: ``[n]`` their pool indices (default ``0..n-1``): sample ``idx[i]``'s masks come
            from ``derive_seed(seed, "mc_dropout", idx[i])``, so the stack is the same however
            the pool is split into requests and batches. ``seed`` is the round's.
    """
    model.eval()
    idx = np.arange(len(features)) if idx is None else np.asarray(idx)
    if idx.shape != (len(features),):
        raise ValueError(f"idx has shape {idx.shape}, features have {len(features)} rows")
    out = []
    for start in range(0, len(features), batch_size):
        x = torch.as_tensor(np.ascontiguousarray(features[start:start + batch_size],
                                                 dtype=np.float32))
        seeds = mc_row_seeds(seed, idx[start:start + batch_size])
        out.append(model.mc_head(model.features(x), n_samples, row_seeds=seeds).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.fc.out_features, n_samples))
