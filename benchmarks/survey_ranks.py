"""Every rank correlation of committed results with the survey's tables, from the CSVs alone.

``medactive report`` writes ``tables/survey_ranks.{md,csv}`` for a store it reads; this script
computes the same rows (the same functions: :func:`medactive.bench.report.survey_rank_rows`)
from the per-round table CSVs already committed under ``results/<grid>/tables/``, whose SQLite
stores are not committed. Each table is matched to the survey table of its dataset's survey
(as the CPU presets set it: PneumoniaMNIST to ISIC 2020 / Table 7, BloodMNIST to
NCT-CRC-HE-100K / Table 6, ACDC to Table 8) at the same or nearest budget.

Usage:
    python benchmarks/survey_ranks.py results/cpu-pneumonia results/cpu-blood \\
        results/cpu-blood-500 results/cpu-acdc

Prints a Markdown table (one row per table and metric: ours, survey table, Spearman rho of the
strategies' area under the budget curve, strategies compared) on standard output.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from medactive.bench.config import list_presets, load_grid
from medactive.bench.report import read_table_csv, survey_rank_rows, survey_ranks_markdown

#: ``<dataset>_b<budget>_<metric>.csv``, the per-round tables (not aubc_/survey_/penalty_)
TABLE = re.compile(r"^(?!aubc_|survey_|penalty_|timing|references)(.+)_b(\d+)_(.+)\.csv$")


def survey_specs():
    """Dataset specs with a ``survey`` key, from every built-in preset (by dataset name)."""
    specs = {}
    for name in list_presets():
        for spec in load_grid(name, data_root="/unused").datasets:
            if spec.survey is not None:
                specs.setdefault(spec.name, spec)
    return specs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="results/<grid> folders")
    args = parser.parse_args(argv)
    tables = []
    for folder in args.results:
        paths = sorted(p for p in (folder / "tables").glob("*.csv") if TABLE.match(p.name))
        if not paths:
            print(f"{folder}: no per-round table CSVs in {folder / 'tables'}", file=sys.stderr)
            return 2
        tables += [read_table_csv(p.read_text(), title=str(p)) for p in paths]
    rows = survey_rank_rows(tables, survey_specs())
    sys.stdout.write(survey_ranks_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
