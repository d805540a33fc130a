"""Tiny image folders and projects for the annotation-workflow tests (8x8 PNGs, no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.project.workflow import init_project


def write_folder(root: Path, n: int = 12, *, size: int = 8, subfolder_every: int = 4,
                 seed: int = 0) -> dict[str, int]:
    """``n`` grayscale PNGs ``case0000..``; every ``subfolder_every``-th goes to ``site2/``.

    Class 1 images are bright, class 0 dark (learnable in a few steps). Returns ``{id: class}``.
    """
    rng = np.random.default_rng(seed)
    truth = {}
    for i in range(n):
        cls = i % 2
        sid = (f"site2/case{i:04d}" if subfolder_every and i % subfolder_every == 0
               else f"case{i:04d}")
        path = root / f"{sid}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        base = 170 if cls else 60
        arr = np.clip(base + rng.normal(0, 25, (size, size)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(path)
        truth[sid] = cls
    return truth


def write_csv(path: Path, rows, header=("id", "label")) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    root = tmp_path / "images"
    return root, write_folder(root)


@pytest.fixture
def project(tmp_path: Path, image_folder):
    """A classification project (classes a, b) over 12 images, smoke preset; no labels yet."""
    root, truth = image_folder
    store = init_project(tmp_path / "proj", root, classes=["a", "b"], preset="smoke", initial=4)
    store.truth = truth  # test convenience
    return store
