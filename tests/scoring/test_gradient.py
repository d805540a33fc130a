"""Last-layer gradient lengths (EGL, entropy-loss gradient) against torch autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medactive.scoring.gradient import entropy_gradient_length, expected_gradient_length

# 4 hand-made samples through a 3-class linear layer on 2-d inputs
W = [[1.0, -2.0], [0.5, 0.0], [-1.0, 1.5]]
B = [0.1, -0.3, 0.2]
H = [[0.0, 0.0], [1.0, 2.0], [-3.0, 0.5], [2.0, -1.0]]


def _layer(bias: bool) -> nn.Linear:
    layer = nn.Linear(2, 3, bias=bias).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(W, dtype=torch.float64))
        if bias:
            layer.bias.copy_(torch.tensor(B, dtype=torch.float64))
    return layer


def _grad_norm(layer: nn.Linear, loss: torch.Tensor) -> float:
    grads = torch.autograd.grad(loss, list(layer.parameters()))
    return float(torch.sqrt(sum((g ** 2).sum() for g in grads)))


def _probas(layer: nn.Linear) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(layer(torch.tensor(H, dtype=torch.float64)), dim=1).numpy()


@pytest.mark.parametrize("bias", [True, False])
def test_egl_equals_autograd_norms_weighted_by_p(bias):
    layer = _layer(bias)
    p = _probas(layer)
    expected = []
    for x in torch.tensor(H, dtype=torch.float64):
        z = layer(x[None])
        norms = [_grad_norm(layer, nn.functional.cross_entropy(layer(x[None]), torch.tensor([y])))
                 for y in range(3)]
        expected.append(sum(p_y * n for p_y, n in zip(torch.softmax(z, 1)[0].tolist(), norms,
                                                      strict=True)))
    np.testing.assert_allclose(expected_gradient_length(p, np.array(H), bias=bias), expected,
                               rtol=1e-10)
    if not bias:  # h = 0 gives no weight gradient at all
        assert expected[0] == 0.0


@pytest.mark.parametrize("bias", [True, False])
def test_entropy_gradient_equals_autograd(bias):
    layer = _layer(bias)
    expected = []
    for x in torch.tensor(H, dtype=torch.float64):
        p = torch.softmax(layer(x[None]), dim=1)
        expected.append(_grad_norm(layer, -(p * torch.log(p)).sum()))
    np.testing.assert_allclose(entropy_gradient_length(_probas(layer), np.array(H), bias=bias),
                               expected, rtol=1e-10)


def test_one_hot_and_uniform_by_hand():
    # one-hot: p - e_y = 0 for the only class with weight -> EGL 0; entropy stationary -> 0.
    # uniform over 2: ||p - e_y|| = sqrt(0.5) for both, ||(h, 1)|| = sqrt(25 + 1)
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    h = np.array([[3.0, 4.0], [3.0, 4.0]])
    np.testing.assert_allclose(expected_gradient_length(p, h), [0.0, np.sqrt(0.5 * 26)])
    np.testing.assert_allclose(expected_gradient_length(p, h, bias=False), [0.0, np.sqrt(12.5)])
    np.testing.assert_allclose(entropy_gradient_length(p, h), [0.0, 0.0], atol=1e-15)
    assert expected_gradient_length(np.zeros((0, 3)), np.zeros((0, 4))).shape == (0,)


def test_shapes_are_checked():
    p = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match=r"\[n, c\]"):
        expected_gradient_length(np.full((3, 2, 4, 4), 0.5), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="n = 3 rows"):
        entropy_gradient_length(p, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="sum to 1"):
        expected_gradient_length(np.full((3, 2), 0.7), np.zeros((3, 5)))
