"""Train and run a classifier on pool indices (device placement and I/O live here).

``fit_classifier`` follows the survey recipe given by a :class:`TrainConfig` (SGD + Nesterov,
cosine decay, cross-entropy) and keeps the checkpoint with the best validation metric, as the
survey does. Everything random (initialisation, batch order, augmentation, MC masks) draws from
generators seeded by the caller, so a seed gives the same model on the same machine.

Given unlabelled pool indices and a :class:`~medactive.tasks.classification.semi_supervised.FixMatchConfig`,
``fit_classifier`` trains FixMatch (Sohn et al. 2020) instead: see :func:`_fixmatch_epoch`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from medactive._optim import optimisation_step
from medactive.data.pool import Split
from medactive.data.tensors import load_images, normalise_batch
from medactive.inference import fold_batch_norm
from medactive.progress import progress_bar
from medactive.tasks.classification.augment import augment_batch
from medactive.tasks.classification.model import Classifier, build_classifier, mc_row_seeds
from medactive.tasks.classification.presets import TrainConfig
from medactive.tasks.classification.semi_supervised import (
    FixMatchConfig,
    fixmatch_unlabeled_loss,
    strong_augment,
    weak_augment,
)
from medactive.tasks.evidential import evidential_loss
from medactive.tasks.learning_loss import RankingTerm, attach_loss_module, stop_epoch

logger = logging.getLogger(__name__)


def fit_classifier(train: Split, labeled_idx: np.ndarray, labels: np.ndarray, *,
                   config: TrainConfig, n_classes: int, in_channels: int, seed: int,
                   validate: Callable[[Classifier], float] | None = None,
                   init_model: Classifier | None = None,
                   init_backbone: dict[str, torch.Tensor] | None = None, device: str = "cpu",
                   progress: bool = False, unlabeled_idx: np.ndarray | None = None,
                   semi: FixMatchConfig | None = None) -> Classifier:
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
            pretraining, :mod:`medactive.encoders.simclr`); its head stays random.
            Ignored when ``init_model`` is given.
        unlabeled_idx: ``[m]`` pool indices of unlabelled images (disjoint from
            ``labeled_idx``) for semi-supervised training; ignored without ``semi``.
        semi: train FixMatch with these settings on ``labeled_idx`` and ``unlabeled_idx``
            (with no unlabelled images the run is the supervised one). Each step takes a
            labelled batch of ``B`` (``config.batch_size``) and ``mu * B`` unlabelled images
            and minimises ``CE(f(weak(x_l)), y) + lambda_u * fixmatch_unlabeled_loss(
            f(weak(u)), f(strong(u)))`` in one forward pass (batch norm sees all three, as in
            the paper's code). An epoch is one pass over the labelled set unless
            ``semi.steps_per_epoch`` fixes the steps (the paper's definition); optimiser,
            schedule, validation and checkpoint choice are ``config``'s. The unlabelled stream
            (order, weak and strong views) has its own generator derived from ``seed``, so
            changing ``mu`` or the pool does not change the labelled batch order. Deviations
            from the paper: labelled
            images get :func:`weak_augment` (not ``config.augmentation``) as in FixMatch, no
            EMA of the weights for evaluation, ``config``'s lr (paper: 0.03) and epochs.
            Pseudo-targets live only inside a step: only the model is returned.

    Returns:
        The model in eval mode.

    Raises:
        ValueError: ``unlabeled_idx`` shares indices with ``labeled_idx``.
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
    model.evidential = config.evidential  # its probabilities are alpha / S from now on
    if config.evidential and semi is not None:
        raise ValueError("--evidential with --semi-supervised fixmatch is not supported")
    if config.learning_loss:  # the loss-prediction module joins the model (and its optimiser)
        if semi is not None:
            raise ValueError("--learning-loss with --semi-supervised fixmatch is not supported")
        attach_loss_module(model, normalise_batch(load_images(
            train, np.asarray(labeled_idx)[:2], config.image_size)).to(device), seed=seed)
    labels_t = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    n = len(labeled_idx)
    steps_per_epoch = max(1, -(-n // config.batch_size))
    use_semi = semi is not None and unlabeled_idx is not None and len(unlabeled_idx) > 0
    if use_semi:
        unlabeled_idx = np.asarray(unlabeled_idx, dtype=np.int64)
        if np.intersect1d(unlabeled_idx, np.asarray(labeled_idx)).size:
            raise ValueError("unlabeled_idx shares indices with labeled_idx")
        if semi.steps_per_epoch is not None:
            steps_per_epoch = semi.steps_per_epoch
        unlabeled_gen = torch.Generator().manual_seed(
            int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))
        labeled_stream = _IndexStream(n, gen)
        unlabeled_stream = _IndexStream(len(unlabeled_idx), unlabeled_gen)
    optimiser = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser,
                                                           T_max=config.epochs * steps_per_epoch)
    in_memory = isinstance(train.images, np.ndarray) and n <= 20000
    cached = load_images(train, labeled_idx, config.image_size) if in_memory else None
    best_score, best_state, best_epoch = -np.inf, None, 0
    bar = progress_bar(config.epochs, desc=f"train ({n} labels)", unit="epoch",
                       enabled=progress)
    for epoch in range(config.epochs):
        model.train()
        if use_semi:
            total, passed = _fixmatch_epoch(
                model, train, labeled_idx, labels_t, unlabeled_idx, config=config, semi=semi,
                cached=cached, steps=semi.steps_per_epoch, labeled_stream=labeled_stream,
                unlabeled_stream=unlabeled_stream, gen=gen, unlabeled_gen=unlabeled_gen,
                optimiser=optimiser, scheduler=scheduler, epoch=epoch, device=device)
            bar.set_postfix(loss=f"{total:.3f}", mask=f"{passed:.2f}")
            logger.debug("fixmatch epoch %d: loss %.4f, %.1f%% unlabelled above threshold",
                         epoch, total, 100 * passed)
        else:
            total = _supervised_epoch(model, train, labeled_idx, labels_t, config=config,
                                      cached=cached, gen=gen, optimiser=optimiser,
                                      scheduler=scheduler, epoch=epoch, device=device)
            bar.set_postfix(loss=f"{total / n:.3f}")
        bar.update(1)
        last = epoch == config.epochs - 1
        if validate is not None and ((epoch + 1) % config.eval_every == 0 or last):
            model.eval()
            score = validate(model)
            if score > best_score or best_state is None:
                best_score, best_epoch = score, epoch
                best_state = copy.deepcopy(model.state_dict())
            elif config.patience and (epoch - best_epoch) >= config.patience * config.eval_every:
                logger.info("validation plateau: stopped after epoch %d of at most %d (best at "
                            "epoch %d, %.4f)", epoch + 1, config.epochs, best_epoch + 1,
                            best_score)
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    # how long it trained and which epoch it kept (a converged reference reports these)
    model.training_summary = {"epochs_run": epoch + 1,
                              "best_epoch": best_epoch + 1 if best_state is not None
                              else epoch + 1}
    model.eval()
    return model


def _supervised_epoch(model: Classifier, train: Split, labeled_idx: np.ndarray,
                      labels_t: torch.Tensor, *, config: TrainConfig,
                      cached: torch.Tensor | None, gen: torch.Generator, optimiser, scheduler,
                      epoch: int, device: str) -> float:
    """One pass over the labelled set; returns the summed (not averaged) batch losses."""
    n = len(labeled_idx)
    order = torch.randperm(n, generator=gen)
    total = 0.0
    for start in range(0, n, config.batch_size):
        batch = order[start:start + config.batch_size]
        if len(batch) < 2 and n >= 2:  # batch norm needs two samples
            continue
        x = (cached[batch] if cached is not None
             else load_images(train, labeled_idx[batch.numpy()], config.image_size))
        x = normalise_batch(augment_batch(x, config.augmentation, gen)).to(device)
        term = RankingTerm.start(model, detach=epoch >= stop_epoch(config.epochs)) \
            if config.learning_loss else None
        loss = (evidential_loss(model(x), labels_t[batch].to(device), epoch=epoch)
                if config.evidential else F.cross_entropy(model(x), labels_t[batch].to(device)))
        if term is not None:  # Yoo & Kweon 2019: + lambda * margin ranking of predicted losses
            loss = loss + term.finish(labels_t[batch].to(device))
        total += optimisation_step(loss, optimiser, scheduler, what="training",
                                   epoch=epoch) * len(batch)
    return total


class _IndexStream:
    """Batches of ``range(n)`` from successive random permutations (a batch may span two)."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.n, self.generator = n, generator
        self.order = torch.zeros(0, dtype=torch.int64)

    def take(self, size: int) -> torch.Tensor:
        size = min(size, self.n)
        parts, need = [], size
        while need > 0:
            if len(self.order) == 0:
                self.order = torch.randperm(self.n, generator=self.generator)
            parts.append(self.order[:need])
            self.order = self.order[need:]
            need -= len(parts[-1])
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)


def _fixmatch_epoch(model: Classifier, train: Split, labeled_idx: np.ndarray,
                    labels_t: torch.Tensor, unlabeled_idx: np.ndarray, *, config: TrainConfig,
                    semi: FixMatchConfig, cached: torch.Tensor | None, steps: int | None,
                    labeled_stream: _IndexStream, unlabeled_stream: _IndexStream,
                    gen: torch.Generator, unlabeled_gen: torch.Generator, optimiser, scheduler,
                    epoch: int, device: str) -> tuple[float, float]:
    """One FixMatch epoch; returns the mean step loss and the fraction of unlabelled images
    that passed the threshold.

    ``steps=None``: the labelled batches of one permutation (the supervised epoch); otherwise
    ``steps`` labelled batches drawn from ``labeled_stream``. Each step's unlabelled batch is
    ``mu * min(B, n_labeled)`` images of ``unlabeled_stream``, at most the pool and, with
    ``semi.max_unlabeled_per_epoch``, at most ``max(2, cap // steps)``.
    """
    n = len(labeled_idx)
    b = config.batch_size
    if steps is None:
        order = torch.randperm(n, generator=gen)
        batches = [order[s:s + b] for s in range(0, n, b)]
    else:
        batches = [labeled_stream.take(b) for _ in range(steps)]
    n_u = semi.mu * min(b, n)
    if semi.max_unlabeled_per_epoch is not None:
        n_u = min(n_u, max(2, semi.max_unlabeled_per_epoch // max(1, len(batches))))
    total, passed, seen = 0.0, 0, 0
    for batch in batches:
        x_l = (cached[batch] if cached is not None
               else load_images(train, labeled_idx[batch.numpy()], config.image_size))
        u_rows = unlabeled_idx[unlabeled_stream.take(n_u).numpy()]
        u = load_images(train, u_rows, config.image_size)
        x = torch.cat([weak_augment(x_l, gen), weak_augment(u, unlabeled_gen),
                       strong_augment(u, unlabeled_gen, n_ops=semi.n_ops, cutout=semi.cutout)])
        logits = model(normalise_batch(x).to(device))
        logits_l, logits_w, logits_s = logits.split([len(x_l), len(u), len(u)])
        loss_u, mask = fixmatch_unlabeled_loss(logits_w, logits_s, semi.threshold)
        loss = F.cross_entropy(logits_l, labels_t[batch].to(device)) + semi.lambda_u * loss_u
        total += optimisation_step(loss, optimiser, scheduler, what="fixmatch training",
                                   epoch=epoch)
        passed += int(mask.sum())
        seen += len(mask)
    return total / max(1, len(batches)), passed / max(1, seen)


@torch.no_grad()
def predict(model: Classifier, split: Split, idx: np.ndarray, *, image_size: int | None,
            batch_size: int = 512, device: str = "cpu", with_features: bool = False,
            progress: bool = False, desc: str = "predict", fold_norms: bool = False,
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities ``[n, c]`` (and features ``[n, d]``) of ``split`` rows ``idx``, batched;
    ``progress`` reports the images done under ``desc`` (:mod:`medactive.progress`) when they
    take more than one batch. ``fold_norms`` runs the pass on
    :func:`~medactive.inference.fold_batch_norm`'s copy of ``model``: the same outputs up to
    float rounding (about 1e-7), 1.45x the images/s of the cpu-preset CNN; pool scoring does,
    evaluation keeps the exact network so that metrics stay bit-for-bit."""
    model.eval()
    folded = fold_batch_norm(model) if fold_norms else model
    probas, feats = [], []
    # one batch is over before a bar would say anything
    bar = progress_bar(len(idx), desc=desc, unit="image", enabled=progress and len(idx) > batch_size)
    for start in range(0, len(idx), batch_size):
        x = normalise_batch(load_images(split, idx[start:start + batch_size], image_size)).to(device)
        h = folded.features(x)
        probas.append(folded.probas(folded.fc(h)).double().cpu().numpy())
        if with_features:
            feats.append(h.float().cpu().numpy())
        bar.update(x.shape[0])
    bar.close()
    n_classes = model.fc.out_features
    p = np.concatenate(probas) if probas else np.zeros((0, n_classes))
    f = (np.concatenate(feats) if feats else np.zeros((0, model.fc.in_features))
         ) if with_features else None
    return p, f


@torch.no_grad()
def predict_mc(model: Classifier, split: Split, idx: np.ndarray, *, n_samples: int, seed: int,
               image_size: int | None, batch_size: int = 512, device: str = "cpu",
               progress: bool = False, desc: str = "predict (MC dropout)",
               fold_norms: bool = False) -> np.ndarray:
    """MC-dropout probabilities ``[n, c, t]``: backbone once per batch, head ``t`` times.

    Sample ``idx[i]``'s masks come from ``derive_seed(seed, "mc_dropout", idx[i])``
    (:func:`~medactive.tasks.classification.model.mc_row_seeds`), so a stack is the same however
    the pool is split into requests and batches; ``seed`` is the round's. ``fold_norms`` runs
    the backbone on :func:`~medactive.inference.fold_batch_norm`'s copy, as :func:`predict`;
    the masks are unchanged (the dropout is the head's, after the backbone).
    """
    model.eval()
    folded = fold_batch_norm(model) if fold_norms else model
    out = []
    bar = progress_bar(len(idx), desc=desc, unit="image", enabled=progress and len(idx) > batch_size)
    for start in range(0, len(idx), batch_size):
        rows = idx[start:start + batch_size]
        x = normalise_batch(load_images(split, rows, image_size)).to(device)
        out.append(folded.mc_head(folded.features(x), n_samples, row_seeds=mc_row_seeds(seed, rows))
                   .double().cpu().numpy())
        bar.update(x.shape[0])
    bar.close()
    return np.concatenate(out) if out else np.zeros((0, model.fc.out_features, n_samples))
