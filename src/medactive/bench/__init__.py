"""Benchmark: grids of AL runs (datasets x strategies x budgets x seeds), a resumable results
store, and reports (tables, learning curves, area under the budget curve, pairwise penalties).

- :mod:`medactive.bench.config`: grid configs, presets, TOML files.
- :mod:`medactive.bench.store`: the SQLite results store.
- :mod:`medactive.bench.runner`: runs a grid in-process, in local worker processes or on Ray.
- :mod:`medactive.bench.report`: tables, curves and statistics from a store.
- :mod:`medactive.bench.survey_tables`: the survey's Tables 6-8 for side-by-side comparison.
- :mod:`medactive.bench.cli`: ``medactive bench`` and ``medactive report``.
"""

from __future__ import annotations

from medactive.bench.config import GridConfig, Unit, list_presets, load_grid

__all__ = ["GridConfig", "Unit", "list_presets", "load_grid"]
