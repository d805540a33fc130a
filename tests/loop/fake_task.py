"""A tiny deterministic task for loop tests: 'training' memorises labels, no torch involved."""

from __future__ import annotations

import numpy as np

from medactive.predictions import ArrayPredictions


class FakeTask:
    kind = "classification"
    primary_metric = "accuracy"

    def __init__(self, n_pool: int = 40, n_classes: int = 3, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.pool_ids = np.array([f"s{i:03d}" for i in range(n_pool)])
        self.truth = rng.integers(0, n_classes, n_pool)
        self.n_classes = n_classes
        self.fits: list[tuple[int, int]] = []

    def pool_labels(self, idx):
        return [int(self.truth[i]) for i in idx]

    def fit(self, labeled_idx, labels, *, seed, init_model=None):
        self.fits.append((len(labeled_idx), seed))
        return {"seen": {int(i) for i in labeled_idx}, "seed": seed}

    def evaluate(self, model, split):
        return {"accuracy": len(model["seen"]) / len(self.pool_ids)}

    def predictions(self, model, *, seed):
        rng = np.random.default_rng(seed)
        n = len(self.pool_ids)
        logits = rng.normal(size=(n, self.n_classes))
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        mc = np.repeat(p[:, :, None], 4, axis=2)
        return ArrayPredictions(probas=p, mc_probas=mc, embeddings=rng.normal(size=(n, 5)))

    def describe(self):
        return {"task": "fake"}
