"""Discrepancy-based representativeness (survey §3.2.3): the networks behind ``dal`` and ``vaal``.

Both train a discriminator between the labeled set and the unlabeled pool and query what it
finds least like the labeled set. The networks are trained here, by the task, beside the
round's model; the strategies (:mod:`medactive.strategies.dal`, :mod:`medactive.strategies.vaal`)
read only the resulting per-sample score, the prediction fields ``"dal_unlabeled"`` and
``"vaal_unlabeled"`` (the probability the discriminator gives to "unlabeled", in [0, 1]).

- :func:`dal_scores` (Gissin & Shalev-Shwartz 2019): an MLP on the round model's
  representation (the ``"embeddings"`` field, standardised with the pool's statistics), binary
  cross-entropy with the labeled class weighted by ``n_unlabeled / n_labeled`` as in the
  authors' code, trained until its training accuracy reaches ``stop_accuracy`` (0.98, the
  authors' rule) or ``max_epochs``. Difference from the paper: one discriminator per query,
  not ten sub-batches each retrained on the grown labeled set (the field is computed once per
  round; the sub-batch loop would need the discriminator inside the strategy).
- :func:`vaal_scores` (Sinha et al. 2019): a convolutional β-VAE on the pool's images (labeled
  and unlabeled) and an MLP discriminator on its latent mean, trained adversarially: the
  discriminator learns labeled = 1, unlabeled = 0; the VAE minimises reconstruction + β·KL and
  makes the discriminator call every latent "labeled". Adam 5e-4 and one discriminator step per
  VAE step, as in the paper; ``steps`` (default 1,000) sized for 28–64 px images on a CPU
  (the paper trains for 100 epochs of CIFAR). Classification only.

Both are seeded (bit-identical per seed on the CPU) and leave the caller's torch random state
alone.

References:
    Gissin and Shalev-Shwartz, "Discriminative active learning", arXiv:1907.06347, 2019.
    Sinha, Ebrahimi and Darrell, "Variational adversarial active learning", ICCV 2019.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medactive._optim import optimisation_step
from medactive.errors import ConfigError


@dataclass(frozen=True)
class DALConfig:
    """How the DAL discriminator trains.

    Attributes:
        hidden: width of its three hidden layers (the authors' MLP: 3 × 256, ReLU).
        lr: Adam learning rate.
        batch_size: embeddings per step.
        max_epochs: passes over the pool at most.
        stop_accuracy: stop once the training accuracy (weighted per class) reaches this.
    """

    hidden: int = 256
    lr: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 20
    stop_accuracy: float = 0.98


@dataclass(frozen=True)
class VAALConfig:
    """How VAAL's VAE and discriminator train.

    Attributes:
        latent: latent dimension (the paper: 32 for CIFAR).
        width: channels of the VAE's first convolution (doubled at the second).
        beta: weight of the KL term.
        adversary: weight of the VAE's adversarial loss (the paper's λ2 = 1).
        lr: Adam learning rate of both networks (the paper: 5e-4).
        steps: VAE + discriminator steps.
        batch_size: labeled and unlabeled images per step (each).
        image_size: images are resized to this (a multiple of 4).
    """

    latent: int = 32
    width: int = 32
    beta: float = 1.0
    adversary: float = 1.0
    lr: float = 5e-4
    steps: int = 1000
    batch_size: int = 64
    image_size: int = 28


def _check_sets(n_labeled: int, n_unlabeled: int, what: str) -> None:
    if n_labeled < 1 or n_unlabeled < 1:
        raise ConfigError(f"{what} needs labeled and unlabeled samples (got {n_labeled} "
                          f"labeled, {n_unlabeled} unlabeled)")


def _mlp(d_in: int, hidden: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, 1))


def dal_scores(features: np.ndarray, labeled: np.ndarray, *, seed: int,
               config: DALConfig = DALConfig()) -> np.ndarray:
    """P(unlabeled) ``[n]`` for every row of ``features`` ``[n, d]`` from a discriminator trained
    on the rows flagged by the boolean mask ``labeled`` (class "labeled") against the others.

    Example:
        >>> x = np.r_[np.zeros((20, 2)), np.ones((20, 2))].astype(np.float32)
        >>> s = dal_scores(x, np.arange(40) < 20, seed=0)
        >>> bool(s[20:].min() > s[:20].max())
        True
    """
    x = np.asarray(features, dtype=np.float32)
    labeled = np.asarray(labeled, dtype=bool)
    n_l, n = int(labeled.sum()), x.shape[0]
    _check_sets(n_l, n - n_l, "dal")
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-6)
    xt = torch.from_numpy(x)
    y = torch.from_numpy((~labeled).astype(np.float32))  # 1 = unlabeled
    # the authors weight the (small) labeled class by n_unlabeled / n_labeled
    weight = torch.where(y == 0, torch.tensor((n - n_l) / n_l), torch.tensor(1.0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _mlp(x.shape[1], config.hidden, 3)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=config.lr)
        for epoch in range(config.max_epochs):
            net.train()
            for batch in torch.randperm(n, generator=gen).split(config.batch_size):
                loss = F.binary_cross_entropy_with_logits(net(xt[batch]).squeeze(1), y[batch],
                                                          weight=weight[batch])
                optimisation_step(loss, opt, None, what="dal discriminator", epoch=epoch)
            with torch.no_grad():
                p = torch.sigmoid(net.eval()(xt).squeeze(1))
            right = ((p > 0.5).float() == y).float()
            accuracy = float((right * weight).sum() / weight.sum())
            if accuracy >= config.stop_accuracy:
                break
    return p.double().numpy()


class _VAE(nn.Module):
    def __init__(self, channels: int, size: int, width: int, latent: int) -> None:
        super().__init__()
        self.side = size // 4
        flat = 2 * width * self.side * self.side
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.Flatten())
        self.mu, self.logvar = nn.Linear(flat, latent), nn.Linear(flat, latent)
        self.expand = nn.Linear(latent, flat)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Sigmoid())
        self.width = width

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def forward(self, x: torch.Tensor, gen: torch.Generator):
        mu, logvar = self.encode(x)
        z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
        h = self.expand(z).view(-1, 2 * self.width, self.side, self.side)
        return self.decoder(h), mu, logvar


def vaal_scores(images: Callable[[np.ndarray], torch.Tensor], n_pool: int,
                labeled: np.ndarray, *, seed: int, config: VAALConfig = VAALConfig(),
                ) -> np.ndarray:
    """P(unlabeled) ``[n_pool]`` from VAAL's discriminator on the VAE's latent means.

    Args:
        images: ``images(idx) -> [len(idx), C, H, W]`` float tensor in [0, 1] at
            ``config.image_size`` (pool-absolute ``idx``).
        n_pool: pool size.
        labeled: boolean mask ``[n_pool]`` of the labeled samples.
        seed: seeds the networks' initialisation, the batches and the VAE's noise.
        config: the training recipe.
    """
    labeled = np.asarray(labeled, dtype=bool)
    lab, unl = np.flatnonzero(labeled), np.flatnonzero(~labeled)
    _check_sets(lab.size, unl.size, "vaal")
    if config.image_size % 4:
        raise ConfigError(f"vaal: image_size must be a multiple of 4, got {config.image_size}")
    rng = np.random.default_rng(seed)
    channels = int(images(lab[:1]).shape[1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = _VAE(channels, config.image_size, config.width, config.latent)
        disc = _mlp(config.latent, 512, 2)
        gen = torch.Generator().manual_seed(seed)
        opt_v = torch.optim.Adam(vae.parameters(), lr=config.lr)
        opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr)
        ones, zeros = torch.ones(config.batch_size), torch.zeros(config.batch_size)
        for step in range(config.steps):
            xl = images(rng.choice(lab, config.batch_size, replace=lab.size < config.batch_size))
            xu = images(rng.choice(unl, config.batch_size, replace=unl.size < config.batch_size))
            vae.train()
            loss_v = 0.0
            for x in (xl, xu):
                recon, mu, logvar = vae(x, gen)
                kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))
                loss_v = loss_v + F.mse_loss(recon, x) + config.beta * kl / x[0].numel()
                # the VAE's adversarial term: make every latent look labeled
                loss_v = loss_v + config.adversary * F.binary_cross_entropy_with_logits(
                    disc(mu).squeeze(1), ones[:x.shape[0]])
            optimisation_step(loss_v, opt_v, None, what="vaal VAE", epoch=step)
            with torch.no_grad():
                mu_l, mu_u = vae.encode(xl)[0], vae.encode(xu)[0]
            loss_d = (F.binary_cross_entropy_with_logits(disc(mu_l).squeeze(1), ones[:len(mu_l)])
                      + F.binary_cross_entropy_with_logits(disc(mu_u).squeeze(1),
                                                           zeros[:len(mu_u)]))
            optimisation_step(loss_d, opt_d, None, what="vaal discriminator", epoch=step)
        vae.eval()
        out = np.empty(n_pool, dtype=np.float64)
        with torch.no_grad():
            for start in range(0, n_pool, 1024):
                idx = np.arange(start, min(n_pool, start + 1024))
                p_labeled = torch.sigmoid(disc(vae.encode(images(idx))[0]).squeeze(1))
                out[idx] = (1.0 - p_labeled).double().numpy()
    return out


def discrepancy_providers(n_pool: int, labeled_idx: np.ndarray | None, *, seed: int,
                          embeddings: Callable[[np.ndarray], np.ndarray],
                          images: Callable[[np.ndarray, int], torch.Tensor] | None = None,
                          dal: DALConfig = DALConfig(), vaal: VAALConfig = VAALConfig(),
                          ) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Providers of ``"dal_unlabeled"`` (and ``"vaal_unlabeled"`` when ``images`` is given) for
    a :class:`~medactive.predictions.CachedPredictions`: each trains its networks once, on first
    use, for the labeled set ``labeled_idx``, and scores the whole pool.

    Args:
        n_pool: pool size.
        labeled_idx: pool indices of the labeled set (``None``: the fields refuse, naming why).
        seed: the round's prediction seed (DAL uses it, VAAL ``seed + 1``).
        embeddings: ``embeddings(idx) -> [len(idx), d]``, the round model's representation.
        images: ``images(idx, size) -> [len(idx), C, size, size]`` in [0, 1] (VAAL's input).
        dal: DAL's training recipe.
        vaal: VAAL's training recipe.
    """
    scores: dict[str, np.ndarray] = {}

    def mask() -> np.ndarray:
        if labeled_idx is None:
            raise ConfigError("dal / vaal need the labeled set: the task was asked for "
                              "predictions without labeled_idx")
        out = np.zeros(n_pool, dtype=bool)
        out[np.asarray(labeled_idx, dtype=np.int64)] = True
        return out

    def dal_field(idx: np.ndarray) -> np.ndarray:
        if "dal" not in scores:
            scores["dal"] = dal_scores(embeddings(np.arange(n_pool)), mask(), seed=seed,
                                       config=dal)
        return scores["dal"][idx]

    def vaal_field(idx: np.ndarray) -> np.ndarray:
        if "vaal" not in scores:
            scores["vaal"] = vaal_scores(lambda i: images(i, vaal.image_size), n_pool, mask(),
                                         seed=seed + 1, config=vaal)
        return scores["vaal"][idx]

    providers = {"dal_unlabeled": dal_field}
    if images is not None:
        providers["vaal_unlabeled"] = vaal_field
    return providers
