"""Evidential deep learning: the loss by hand, and heads / CNNs trained with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.scoring.evidential import dirichlet_vacuity
from medactive.tasks.classification import get_preset
from medactive.tasks.classification.head import (
    FeatureIdentity,
    HeadConfig,
    fit_head,
    head_outputs,
    head_probas,
)
from medactive.tasks.classification.model import Classifier
from medactive.tasks.classification.train import fit_classifier, predict
from medactive.tasks.evidential import (
    annealing_coefficient,
    dirichlet_alpha,
    evidential_loss,
    kl_to_uniform,
    mse_bayes_risk,
)
from tests.tasks.classification.test_train import _toy_split


def _logits_for(evidence):
    """Logits whose softplus is ``evidence``."""
    return torch.log(torch.expm1(torch.tensor(evidence, dtype=torch.float64)))


def test_loss_of_one_sample_by_hand():
    # evidence (2, 1): alpha (3, 2), S = 5, p = (0.6, 0.4); label 0
    logits = _logits_for([[2.0, 1.0]])
    np.testing.assert_allclose(dirichlet_alpha(logits).numpy(), [[3.0, 2.0]])
    # Eq. 5: (1 - 0.6)^2 + 0.4^2 + 2 * 0.6 * 0.4 / 6 = 0.32 + 0.08
    assert float(evidential_loss(logits, torch.tensor([0]), epoch=0)) == pytest.approx(0.4)
    # alpha~ = (1, 2): KL[Beta(1, 2) || U] = log 2 - 1/2, full weight from epoch 10
    kl = np.log(2) - 0.5
    assert float(evidential_loss(logits, torch.tensor([0]), epoch=10)) == pytest.approx(0.4 + kl)
    assert float(evidential_loss(logits, torch.tensor([0]), epoch=5)) == \
        pytest.approx(0.4 + 0.5 * kl)


def test_loss_pieces_by_hand():
    alpha = torch.tensor([[2.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    # p = (2/3, 1/3), S = 3, y = e_1: (2/3)^2 * 2 + 2 * (2/9) / 4 = 8/9 + 1/9
    np.testing.assert_allclose(mse_bayes_risk(alpha[:1], torch.tensor([[0.0, 1.0]],
                                                                       dtype=torch.float64)),
                               [1.0])
    np.testing.assert_allclose(kl_to_uniform(alpha).numpy(), [np.log(2) - 0.5, 0.0], atol=1e-12)
    assert [annealing_coefficient(t) for t in (0, 5, 10, 30)] == [0.0, 0.5, 1.0, 1.0]


def _two_blobs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(scale=0.3, size=(n, 2))
    x[:, 0] += np.where(y == 1, 2.0, -2.0)
    return x.astype(np.float32), y


def test_evidential_head_learns_and_is_unsure_far_from_the_data():
    x, y = _two_blobs()
    cfg = HeadConfig(kind="mlp", hidden=16, steps=400, dropout=0.0, evidential=True)
    head = fit_head(x, y, n_classes=2, config=cfg, seed=0)
    assert head.evidential
    probas = head_probas(head, x)
    assert (probas.argmax(1) == y).mean() == 1.0
    # far away, between the classes: little evidence for either
    far = np.array([[0.0, 6.0], [0.0, -6.0], [0.0, 9.0]], dtype=np.float32)

    def alpha(f):
        return dirichlet_alpha(head.fc(head.features(torch.as_tensor(f)))).detach()

    u_train, u_far = dirichlet_vacuity(alpha(x).numpy()), dirichlet_vacuity(alpha(far).numpy())
    assert u_train.mean() < u_far.mean()
    # the head's probabilities are the Dirichlet mean alpha / S, not a softmax
    a = alpha(x).numpy()
    np.testing.assert_allclose(head_outputs(head, x)[0], a / a.sum(1, keepdims=True),
                               rtol=1e-6)


def test_evidential_head_is_reproducible_per_seed():
    x, y = _two_blobs(30)
    cfg = HeadConfig(kind="mlp", hidden=8, steps=30, evidential=True)
    a, b = (fit_head(x, y, n_classes=2, config=cfg, seed=2) for _ in range(2))
    c = fit_head(x, y, n_classes=2, config=cfg, seed=3)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.fc.weight, c.fc.weight)
    # not the cross-entropy head
    plain = fit_head(x, y, n_classes=2, config=HeadConfig(kind="mlp", hidden=8, steps=30),
                     seed=2)
    assert not torch.equal(a.fc.weight, plain.fc.weight)


@pytest.mark.slow
def test_evidential_cnn_learns_the_toy_problem_reproducibly():
    split = _toy_split(64)
    # the bounded MSE risk learns slower than cross-entropy (15 epochs at lr 0.01 there)
    cfg = get_preset("smoke", epochs=40, lr=0.02, evidential=True)
    idx = np.arange(64)
    model = fit_classifier(split, idx, split.labels, config=cfg, n_classes=2, in_channels=1,
                           seed=0)
    assert model.evidential
    probas, _ = predict(model, split, idx, image_size=None)
    assert (probas.argmax(1) == split.labels).mean() >= 0.8
    again = fit_classifier(split, idx, split.labels, config=cfg, n_classes=2, in_channels=1,
                           seed=0)
    assert torch.equal(model.fc.weight, again.fc.weight)


def test_classifier_probas_follow_its_kind():
    model = Classifier(FeatureIdentity(2), 2)
    logits = _logits_for([[2.0, 1.0]]).float()
    np.testing.assert_allclose(model.probas(logits).numpy(), torch.softmax(logits, 1).numpy())
    model.evidential = True
    np.testing.assert_allclose(model.probas(logits).numpy(), [[0.6, 0.4]], rtol=1e-6)
