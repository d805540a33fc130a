"""Tiny on-disk fixtures with the real file layouts (a few 8x8 images each); no downloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.data.classification.nct import NCT_CLASSES


def write_image(path: Path, *, size: tuple[int, int] = (8, 8), mode: str = "L",
                value: int = 0) -> Path:
    """Write a constant-ish image (pixel (0, 0) = ``value``) of ``size`` (h, w) in ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 3 if mode == "RGB" else 1
    arr = np.full((size[0], size[1], channels), 100, dtype=np.uint8)
    arr[0, 0] = value
    img = Image.fromarray(arr[..., 0] if channels == 1 else arr, mode=mode)
    img.save(path)
    return path


@pytest.fixture
def make_image():
    return write_image


@pytest.fixture
def nct_root(tmp_path: Path) -> Path:
    """NCT-CRC-HE-100K with 10 RGB .tif patches per class, CRC-VAL-HE-7K with 2 per class."""
    root = tmp_path / "nct"
    for label, name in enumerate(NCT_CLASSES):
        for i in range(10):
            write_image(root / "NCT-CRC-HE-100K" / name / f"{name}-TRAIN{i:02d}.tif", mode="RGB",
                        value=label)
        for i in range(2):
            write_image(root / "CRC-VAL-HE-7K" / name / f"{name}-TCGA{i:02d}.tif", mode="RGB",
                        value=label)
    return root


def write_isic(root: Path, *, image_dir: str = "train", n_patients: int = 20) -> Path:
    """ISIC 2020 layout: ground-truth CSV + JPEGs of two sizes; patients own 1-3 images each,
    every 4th patient has one malignant image (5 of 20 patients)."""
    header = ("image_name,patient_id,lesion_id,sex,age_approx,anatom_site_general_challenge,"
              "diagnosis,benign_malignant,target")
    rows = [header]
    k = 0
    for p in range(n_patients):
        for j in range(1 + p % 3):
            name = f"ISIC_{1000000 + 7 * k:07d}"
            malignant = p % 4 == 0 and j == 0
            target = int(malignant)
            rows.append(f"{name},IP_{p:07d},IL_{k:07d},male,45.0,torso,"
                        f"{'melanoma' if malignant else 'nevus'},"
                        f"{'malignant' if malignant else 'benign'},{target}")
            write_image(root / image_dir / f"{name}.jpg", mode="RGB",
                        size=(8, 8) if k % 2 else (10, 12))
            k += 1
    (root / "ISIC_2020_Training_GroundTruth.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(name="write_isic")
def write_isic_fixture():
    return write_isic


@pytest.fixture
def isic_root(tmp_path: Path) -> Path:
    return write_isic(tmp_path / "isic")
