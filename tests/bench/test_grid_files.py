"""Every grid file committed under benchmarks/grids/ loads (so the commands in docs/RESULTS.md
that name them start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medactive.bench.config import describe_grid, load_grid

GRIDS = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "grids").glob("*.toml"))


@pytest.mark.parametrize("path", GRIDS, ids=[p.stem for p in GRIDS])
def test_grid_file_loads_and_describes(path):
    grid = load_grid(path, data_root="/data")
    assert grid.name == path.stem and grid.units()
    assert "Training:" in describe_grid(grid)
