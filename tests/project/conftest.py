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


# -- segmentation: tiny NIfTI volumes --------------------------------------------------------
SEG_H, SEG_W, SEG_S = 12, 16, 3  # [S, H, W]; NIfTI arrays are (x=W, y=H, z=S)


def seg_volume(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An ``[S, H, W]`` image and its mask: an 'outer' rectangle (1) holding an 'inner' one (2)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((SEG_S, SEG_H, SEG_W), dtype=np.uint8)
    mask[:, 3:9, 4:12] = 1
    mask[:, 5:7, 6:10] = 2
    image = mask * 60.0 + rng.normal(0, 5, mask.shape)
    return image.astype(np.float32), mask


def save_nifti(arr_shw: np.ndarray, path: Path) -> None:
    """Write ``[S, H, W]`` as NIfTI ``(x=W, y=H, z=S)`` with anisotropic spacing."""
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.transpose(arr_shw, (2, 1, 0)), np.diag([1.2, 1.0, 3.0, 1])),
             str(path))


@pytest.fixture
def seg_folder(tmp_path) -> Path:
    """Five volumes: case0 a pool volume with a mask, case1/2 without, case3/4 val/test."""
    pytest.importorskip("nibabel")
    root = tmp_path / "vols"
    for i in range(5):
        image, mask = seg_volume(i)
        save_nifti(image, root / "images" / f"case{i}.nii.gz")
        if i in (0, 3, 4):
            save_nifti(mask, root / "masks" / f"case{i}.nii.gz")
    (root / "val.list").write_text("case3\n")
    (root / "test.list").write_text("case4\n")
    (root / "classes.txt").write_text("background\nouter\ninner\n")
    return root
