"""DeepFool distances (DFAL's field) on hand-made linear classifiers, and in the task."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from medactive.tasks.adversarial import OVERSHOOT, deepfool_distances, head_dfal_distances


def _affine(w, b):
    w = torch.tensor(w, dtype=torch.float64)
    b = torch.tensor(b, dtype=torch.float64)
    return lambda x: x @ w.T + b


def _analytic(w, b, x):
    """min_{k != pred} |f_k - f_pred| / ||w_k - w_pred|| per row of x."""
    w, b, x = np.asarray(w, float), np.asarray(b, float), np.asarray(x, float)
    f = x @ w.T + b
    out = []
    for row in f:
        k_hat = int(row.argmax())
        out.append(min(abs(row[k] - row[k_hat]) / np.linalg.norm(w[k] - w[k_hat])
                       for k in range(len(w)) if k != k_hat))
    return np.array(out)


def test_two_classes_by_hand():
    # f0 - f1 = 2 x1 + 2 x2 + 1; ||w0 - w1|| = 2 sqrt 2
    w, b = [[1.0, 2.0], [-1.0, 0.0]], [0.5, -0.5]
    x = torch.tensor([[1.0, 1.0], [-2.0, -1.0], [-0.5, 0.0], [0.0, 0.0]], dtype=torch.float64)
    d = deepfool_distances(_affine(w, b), x)
    # [1, 1]: f0 - f1 = 5; [-2, -1] on the far side: -5, the same distance; [-0.5, 0] lies on
    # the boundary (a tie: distance 0); the origin: 1 / (2 sqrt 2)
    expected = np.array([5.0, 5.0, 0.0, 1.0]) / (2 * np.sqrt(2)) * (1 + OVERSHOOT)
    np.testing.assert_allclose(d, expected, rtol=1e-12)
    np.testing.assert_allclose(deepfool_distances(_affine(w, b), x, overshoot=0.5),
                               expected / (1 + OVERSHOOT) * 1.5, rtol=1e-12)


def test_three_classes_nearest_boundary():
    w, b = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], [0.0, 0.0, 0.0]
    # [2, 1]: f = (2, 1, -3): class 1 at 1/sqrt 2, class 2 at 5/sqrt 5 -> 1/sqrt 2
    d = deepfool_distances(_affine(w, b), torch.tensor([[2.0, 1.0]], dtype=torch.float64))
    np.testing.assert_allclose(d, [(1 + OVERSHOOT) / np.sqrt(2)], rtol=1e-12)
    x = np.random.default_rng(0).normal(scale=3, size=(50, 2))
    b = [0.3, -0.2, 0.1]
    np.testing.assert_allclose(deepfool_distances(_affine(w, b), torch.tensor(x)),
                               (1 + OVERSHOOT) * _analytic(w, b, x), rtol=1e-10)


def test_perturbation_flips_a_nonlinear_classifier_and_is_reproducible():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))
    x = torch.randn(20, 3)
    d = deepfool_distances(net, x)
    assert np.isfinite(d).all() and (d > 0).all()
    np.testing.assert_array_equal(d, deepfool_distances(net, x))
    # each sample's distance does not depend on the batch it is scored in
    np.testing.assert_allclose(np.concatenate([deepfool_distances(net, x[:7]),
                                               deepfool_distances(net, x[7:])]), d, rtol=1e-6)


def test_unmovable_and_unflipped_samples(caplog):
    x = torch.tensor([[1.0]], dtype=torch.float64)
    assert deepfool_distances(lambda v: torch.cat([0 * v + 1, 0 * v], 1), x)[0] == np.inf
    # f0 - f1 = 1 + x^2 > 0 everywhere: never flips; the norm reached is returned, and logged
    with caplog.at_level(logging.INFO, logger="medactive.tasks.adversarial"):
        d = deepfool_distances(lambda v: torch.cat([1 + v ** 2, 0 * v], 1), x, max_iter=3)
    assert np.isfinite(d).all() and d[0] > 0
    assert "kept their prediction after 3 steps" in caplog.text
    assert deepfool_distances(lambda v: v, torch.zeros((0, 2))).shape == (0,)
    with pytest.raises(ValueError, match="max_iter"):
        deepfool_distances(lambda v: v, x, max_iter=0)
    with pytest.raises(ValueError, match="overshoot"):
        deepfool_distances(lambda v: v, x, overshoot=-0.1)


def test_head_distances_for_a_linear_head_are_analytic():
    from medactive.tasks.classification.head import HeadConfig, build_head

    head = build_head(HeadConfig(kind="linear", dropout=0.2), 4, 3, seed=0)
    feats = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32)
    w = head.fc.weight.detach().double().numpy()
    b = head.fc.bias.detach().double().numpy()
    d = head_dfal_distances(head, feats, batch_size=7)
    np.testing.assert_allclose(d, (1 + OVERSHOOT) * _analytic(w, b, feats), rtol=1e-4)
    np.testing.assert_array_equal(d, head_dfal_distances(head, feats, batch_size=7))


@pytest.mark.slow
def test_task_provides_dfal_distance_in_both_modes(tmp_path, monkeypatch):
    from medactive.encoders import load_encoder
    from medactive.tasks.classification import ClassificationTask, get_preset
    from medactive.tasks.classification.head import HeadConfig
    from tests.tasks.classification.test_task_modes import _dataset, write_tiny_encoder

    monkeypatch.setenv("MEDACTIVE_CACHE", str(tmp_path / "cache"))
    encoder = load_encoder(str(write_tiny_encoder(tmp_path / "enc.pt")), in_channels=1)
    labeled = np.arange(10)
    frozen = ClassificationTask(_dataset(), get_preset("smoke"), encoder=encoder,
                                train_mode="frozen", head=HeadConfig(steps=30))
    head = frozen.fit(labeled, frozen.pool_labels(labeled), seed=0)
    idx = np.array([12, 3, 25])
    d = frozen.predictions(head, seed=0).get("dfal_distance", idx)
    # a linear head on the standardised features: the analytic distance to its boundary
    w, b = head.fc.weight.detach().double().numpy(), head.fc.bias.detach().double().numpy()
    np.testing.assert_allclose(
        d, (1 + OVERSHOOT) * _analytic(w, b, frozen.embeddings("train")[idx]), rtol=1e-4)

    finetune = ClassificationTask(_dataset(), get_preset("smoke"))
    model = finetune.fit(labeled, finetune.pool_labels(labeled), seed=0)
    preds = finetune.predictions(model, seed=0)
    d = preds.get("dfal_distance", np.arange(30))
    assert d.shape == (30,) and np.isfinite(d).all() and (d >= 0).all()
    np.testing.assert_array_equal(finetune.predictions(model, seed=0).get("dfal_distance",
                                                                          idx), d[idx])
