from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.errors import ConfigError
from medactive.tasks.classification.head import (
    HeadConfig,
    Standardiser,
    fit_head,
    head_mc_probas,
    head_outputs,
    head_probas,
)
from medactive.tasks.classification.semi_supervised import FixMatchConfig


def _separable(n=200, d=6, seed=0):
    """Three classes whose class means differ by 12 units along dims 0 and 1 (noise sd 1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    x = rng.normal(size=(n, d))
    x[:, :2] += centres[y]
    return (5.0 + 3.0 * x).astype(np.float32), y  # shifted and scaled: standardising matters


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_head_separates_a_linearly_separable_set(kind):
    x, y = _separable()
    std = Standardiser.fit(x)
    head = fit_head(std(x[:100]), y[:100], n_classes=3,
                    config=HeadConfig(kind=kind, steps=300, hidden=16), seed=0)
    accuracy = (head_probas(head, std(x[100:])).argmax(1) == y[100:]).mean()
    assert accuracy == 1.0


def test_standardiser_uses_pool_statistics_and_keeps_constant_dims():
    x = np.array([[1.0, 7.0], [3.0, 7.0]], dtype=np.float32)
    s = Standardiser.fit(x)
    np.testing.assert_allclose(s(x), [[-1.0, 0.0], [1.0, 0.0]])


def test_same_seed_same_head_other_seed_other_head():
    x, y = _separable(60)
    cfg = HeadConfig(kind="mlp", hidden=8, steps=20)
    a = fit_head(x, y, n_classes=3, config=cfg, seed=3)
    b = fit_head(x, y, n_classes=3, config=cfg, seed=3)
    c = fit_head(x, y, n_classes=3, config=cfg, seed=4)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_outputs_shapes_and_mc_spread():
    x, y = _separable(40, d=5)
    head = fit_head(x, y, n_classes=3, config=HeadConfig(kind="mlp", hidden=7, steps=5),
                    seed=0)
    p, h = head_outputs(head, x)
    assert p.shape == (40, 3) and h.shape == (40, 7)
    np.testing.assert_allclose(p.sum(1), 1.0)
    mc = head_mc_probas(head, x, n_samples=4, seed=1)
    assert mc.shape == (40, 3, 4)
    assert mc.std(axis=2).max() > 0  # dropout > 0 by default: MC samples differ
    np.testing.assert_array_equal(mc, head_mc_probas(head, x, n_samples=4, seed=1))
    _, h_lin = head_outputs(fit_head(x, y, n_classes=3, config=HeadConfig(steps=1), seed=0), x)
    np.testing.assert_array_equal(h_lin, x)  # a linear head's embedding is its input


def test_best_validation_checkpoint_is_kept():
    x, y = _separable(30)
    seen = []

    def validate(model):  # the first check scores best: that head must come back
        seen.append(model.fc.weight.detach().clone())
        return 1.0 if len(seen) == 1 else 0.0

    head = fit_head(x, y, n_classes=3, config=HeadConfig(steps=20, eval_every=5), seed=0,
                    validate=validate)
    assert len(seen) == 4
    assert torch.equal(head.fc.weight, seen[0])


def test_fixmatch_term_uses_the_unlabeled_embeddings():
    x, y = _separable(60)
    cfg = HeadConfig(steps=10)
    plain = fit_head(x[:10], y[:10], n_classes=3, config=cfg, seed=0)
    semi = fit_head(x[:10], y[:10], n_classes=3, config=cfg, seed=0, unlabeled=x[10:],
                    semi=FixMatchConfig(threshold=0.0, mu=2))
    assert not torch.equal(plain.fc.weight, semi.fc.weight)


def test_head_config_errors():
    assert HeadConfig.from_dict("mlp").kind == "mlp"
    with pytest.raises(ConfigError, match="head kind"):
        HeadConfig.from_dict({"kind": "transformer"})
    with pytest.raises(ConfigError, match="unknown head option"):
        HeadConfig.from_dict({"depth": 3})
    with pytest.raises(ConfigError, match="dropout"):
        HeadConfig(dropout=1.0)


@pytest.mark.parametrize("chunk", [1, 3, 16])
def test_head_mc_probas_is_the_same_however_the_pool_is_chunked(chunk):
    """Masks depend on (seed, pool index) only: rows asked in blocks (the pool's request
    blocks) or in small batches equal the rows of one call, and sample i's pass 0 is not
    sample j's pass 0 because they sit at the same place of two blocks."""
    x, y = _separable(40, d=5)
    head = fit_head(x, y, n_classes=3, config=HeadConfig(kind="mlp", hidden=7, steps=5),
                    seed=0)
    idx = np.arange(100, 140)
    whole = head_mc_probas(head, x, idx=idx, n_samples=4, seed=1)
    blocks = np.concatenate([head_mc_probas(head, x[s:s + chunk], idx=idx[s:s + chunk],
                                            n_samples=4, seed=1, batch_size=2)
                             for s in range(0, 40, chunk)])
    np.testing.assert_allclose(blocks, whole, rtol=0, atol=1e-6)
    assert not np.allclose(head_mc_probas(head, x, idx=idx, n_samples=4, seed=2), whole)
