"""Tiny synthetic cardiac-like data written in the real on-disk layouts (h5 and NIfTI)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

H, W = 40, 36  # not square, not a multiple of 16: exercises the resizing


def synthetic_volume(rng: np.random.Generator, n_slices: int = 3, shape=(H, W)
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(image [S, H, W] float32 in [0, 1], mask [S, H, W] uint8)``: LV disc (3) in a MYO ring
    (2) with an RV blob (1) beside it; class-dependent intensities plus noise."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    images, masks = [], []
    for s in range(n_slices):
        cy, cx = shape[0] / 2 + rng.uniform(-3, 3), shape[1] / 2 + rng.uniform(-3, 3)
        r = rng.uniform(5, 8) * (1 - 0.15 * s / max(n_slices, 1))
        d = np.hypot(yy - cy, xx - cx)
        mask = np.zeros(shape, np.uint8)
        mask[np.hypot(yy - cy, xx - cx - r - 5) < r * 0.8] = 1
        mask[d < r + 3] = 2
        mask[d < r] = 3
        image = np.choose(mask, [0.1, 0.5, 0.3, 0.9]) + rng.normal(0, 0.05, shape)
        images.append(image)
        masks.append(mask)
    image = np.clip(np.stack(images), 0, 1).astype(np.float32)
    return image, np.stack(masks)


def write_h5_layout(root: Path, *, train_patients=(3, 4, 5, 6), val_patients=(2,),
                    test_patients=(1,), n_slices: int = 3, seed: int = 0) -> Path:
    """The SSL4MIS layout: data/slices/*.h5, data/*.h5 and the *.list files (both frames)."""
    import h5py

    rng = np.random.default_rng(seed)
    (root / "data" / "slices").mkdir(parents=True)
    slice_names = []
    for p in train_patients:
        for frame in (1, 2):
            image, mask = synthetic_volume(rng, n_slices)
            for k in range(n_slices):
                name = f"patient{p:03d}_frame{frame:02d}_slice_{k + 1}"
                with h5py.File(root / "data" / "slices" / f"{name}.h5", "w") as f:
                    f["image"], f["label"] = image[k], mask[k]
                slice_names.append(name)
    (root / "train_slices.list").write_text("\n".join(slice_names) + "\n")
    for split, patients in (("val", val_patients), ("test", test_patients)):
        names = []
        for p in patients:
            for frame in (1, 2):
                image, mask = synthetic_volume(rng, n_slices)
                name = f"patient{p:03d}_frame{frame:02d}"
                with h5py.File(root / "data" / f"{name}.h5", "w") as f:
                    f["image"], f["label"] = image, mask
                names.append(name)
        (root / f"{split}.list").write_text("\n".join(names) + "\n")
    return root


def write_nifti(path: Path, volume_shw: np.ndarray, spacing_zyx=(10.0, 1.5, 1.25),
                dtype=None) -> None:
    """Write an ``[S, H, W]`` array as NIfTI ``(x, y, z)`` with the given spacing."""
    import nibabel as nib

    data = np.transpose(volume_shw, (2, 1, 0))
    if dtype is not None:
        data = data.astype(dtype)
    img = nib.Nifti1Image(data, np.diag([spacing_zyx[2], spacing_zyx[1], spacing_zyx[0], 1.0]))
    img.header.set_zooms((spacing_zyx[2], spacing_zyx[1], spacing_zyx[0]))
    nib.save(img, str(path))


def write_acdc_nifti(root: Path, *, patients=(1, 2, 3, 4), ed_es=(1, 5), n_slices: int = 3,
                     seed: int = 0, info: bool = True) -> Path:
    """Raw ACDC: training/patientNNN/{Info.cfg, patientNNN_frameFF.nii.gz, ..._gt.nii.gz}."""
    rng = np.random.default_rng(seed)
    for p in patients:
        folder = root / "training" / f"patient{p:03d}"
        folder.mkdir(parents=True)
        if info:
            folder.joinpath("Info.cfg").write_text(
                f"ED: {ed_es[0]}\nES: {ed_es[1]}\nGroup: NOR\nHeight: 180.0\nNbFrame: 20\n")
        for frame in ed_es:
            image, mask = synthetic_volume(rng, n_slices)
            write_nifti(folder / f"patient{p:03d}_frame{frame:02d}.nii.gz", image * 400.0)
            write_nifti(folder / f"patient{p:03d}_frame{frame:02d}_gt.nii.gz", mask,
                        dtype=np.uint8)
    return root


@pytest.fixture(scope="session")
def seg() -> SimpleNamespace:
    """The helpers above, for tests (test modules are not importable as a package)."""
    return SimpleNamespace(H=H, W=W, synthetic_volume=synthetic_volume,
                           write_h5_layout=write_h5_layout, write_nifti=write_nifti,
                           write_acdc_nifti=write_acdc_nifti)


@pytest.fixture
def h5_root(tmp_path: Path) -> Path:
    return write_h5_layout(tmp_path / "acdc")


@pytest.fixture
def acdc_nifti_root(tmp_path: Path) -> Path:
    return write_acdc_nifti(tmp_path / "acdc_raw")


@pytest.fixture
def acdc_h5_real(shared_data: Path) -> Path:
    path = shared_data / "acdc"
    if not (path / "data" / "slices").is_dir():
        pytest.skip(f"ACDC (SSL4MIS h5 layout) not found at {path}")
    return path


def run_smoke_segmentation(data: Path, out: Path) -> list[dict[str, str]]:
    """`medactive run` of 2 + 2 entropy-queried slices with the smoke preset on ``data``;
    the rows of its rounds.csv (the run must succeed)."""
    import csv

    from medactive.cli import main

    assert main(["run", "--data", str(data), "--task", "segmentation", "--strategy", "entropy",
                 "--initial", "2", "--budget", "2", "--rounds", "1", "--seed", "0",
                 "--preset", "smoke", "--threads", "1", "--out", str(out)]) == 0
    with open(out / "rounds.csv") as f:
        return list(csv.DictReader(f))
