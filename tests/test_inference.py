"""Prediction fields of a user's own model: hand-checkable probabilities, hooks, MC passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medactive.errors import ConfigError
from medactive.inference import model_predictions
from medactive.strategies import create_strategy


class Net(nn.Module):
    """features (identity on 2-d inputs) -> dropout -> fc, fc the identity matrix."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.head = nn.Sequential(nn.Dropout(p), nn.Linear(2, 2))
        with torch.no_grad():
            self.head[1].weight.copy_(torch.eye(2))
            self.head[1].bias.zero_()

    def forward(self, x):
        return self.head(self.features(x))


X = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
LOADER = [(X[:2], torch.zeros(2)), (X[2:], torch.zeros(1))]  # (images, labels) batches


def test_probabilities_are_the_softmax_of_the_logits():
    p = model_predictions(Net(), LOADER, fields=("probas",)).get("probas", np.arange(3))
    e = np.exp(2.0)
    np.testing.assert_allclose(p, [[0.5, 0.5], [e / (e + 1), 1 / (e + 1)],
                                   [1 / (1 + np.e), np.e / (1 + np.e)]], rtol=1e-6)


def test_embeddings_by_hook_on_a_named_layer():
    net = Net()
    inp = model_predictions(net, LOADER, fields=("embeddings",), embedding_layer="head.1")
    np.testing.assert_array_equal(inp.get("embeddings", np.arange(3)), X.numpy())
    out = model_predictions(net, LOADER, fields=("embeddings",), embedding_layer="head:output")
    np.testing.assert_allclose(out.get("embeddings", np.arange(3)), X.numpy())  # eval: no dropout


@pytest.mark.parametrize("mode", ["full", "head"])
def test_mc_passes_vary_with_dropout_and_repeat_per_seed(mode):
    net = Net(0.5)
    kwargs = {"fields": ("mc_probas",), "mc_samples": 30, "mc_dropout": mode, "head": "head",
              "seed": 1}
    mc = model_predictions(net, LOADER, **kwargs).get("mc_probas", np.arange(3))
    assert mc.shape == (3, 2, 30)
    assert mc[1].std(axis=-1).max() > 0.05  # the input [2, 0] is dropped in some passes
    np.testing.assert_allclose(mc.sum(axis=1), 1.0)
    again = model_predictions(net, LOADER, **kwargs).get("mc_probas", np.arange(3))
    np.testing.assert_array_equal(mc, again)
    assert net.training and net.head[0].training  # a model in train mode stays in it
    net.eval()
    model_predictions(net, LOADER, **kwargs)
    assert not net.training and not net.head[0].training


def test_global_random_state_is_left_alone():
    net = Net()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    model_predictions(net, LOADER, fields=("mc_probas",), mc_samples=4, seed=9)
    torch.testing.assert_close(torch.rand(3), expected)


def test_without_dropout_there_is_no_mc_stack():
    net = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="no.*dropout|has none"):
        model_predictions(net, LOADER, fields=("mc_probas",))


def test_errors_name_what_is_wrong():
    with pytest.raises(ConfigError, match="no module 'fcc'.*head"):
        model_predictions(Net(), LOADER, fields=("embeddings",), embedding_layer="fcc")
    with pytest.raises(ConfigError, match="unknown prediction field"):
        model_predictions(Net(), LOADER, fields=("logits",))
    with pytest.raises(ConfigError, match="needs embedding_layer"):
        model_predictions(Net(), LOADER, fields=("embeddings",))
    with pytest.raises(ConfigError, match="head='NAME'"):
        model_predictions(Net(), LOADER, fields=("mc_probas",), mc_dropout="head")
    bad = [torch.tensor([[float("nan"), 0.0]])]
    with pytest.raises(ConfigError, match="NaN"):
        model_predictions(Net(), bad, fields=("probas",))


def test_the_fields_feed_strategies():
    preds = model_predictions(Net(), LOADER, fields=("probas", "embeddings", "mc_probas"),
                              embedding_layer="head.1", mc_samples=5)
    for name in ("margin", "badge", "bald", "coreset_l2"):
        result = create_strategy(name).query(preds, np.array([1, 2]), np.array([0]), 1, rng=0)
        assert result.indices.size == 1
    # margin: sample 2 (probabilities 0.27/0.73) is less certain than sample 1 (0.88/0.12)
    assert create_strategy("margin").query(preds, np.array([1, 2]), np.array([0]), 1,
                                           rng=0).indices.tolist() == [2]
