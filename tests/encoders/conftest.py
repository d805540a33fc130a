"""Tiny two-kind image sets for encoder tests (answers checkable by eye)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def two_kind_arrays(n_train: int = 96, n_eval: int = 32, seed: int = 0, size: int = 16,
                    ) -> dict[str, np.ndarray]:
    """MedMNIST-shaped arrays: class 0 a bright left half, class 1 a bright right half, noise."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("val", n_eval), ("test", n_eval)):
        labels = np.arange(n) % 2
        images = rng.integers(0, 60, size=(n, size, size), dtype=np.uint8)
        for i, y in enumerate(labels):
            half = slice(0, size // 2) if y == 0 else slice(size // 2, size)
            images[i, :, half] += 150
        out[f"{split}_images"] = images
        out[f"{split}_labels"] = labels.reshape(-1, 1).astype(np.uint8)
    return out


@pytest.fixture
def two_kind_npz(tmp_path: Path) -> Path:
    path = tmp_path / "twokind.npz"
    np.savez(path, **two_kind_arrays())
    return path
