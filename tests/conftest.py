"""Shared test configuration: one torch thread (the CI machine has 2 cores), data locations."""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the project, or skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data beside the project)")
    return SHARED_DATA


@pytest.fixture
def medmnist_path(shared_data: Path):
    """Factory returning the path of a MedMNIST file in ../shared/data/medmnist, or skipping."""

    def _get(name: str) -> Path:
        path = shared_data / "medmnist" / f"{name}.npz"
        if not path.is_file():
            pytest.skip(f"{path} not found")
        return path

    return _get
