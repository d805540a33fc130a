"""Re-render committed per-round result tables from their CSVs with the current renderer.

The SQLite stores behind ``results/<grid>/`` are not committed, so ``medactive report`` cannot
run again on them. Each per-round table's CSV (written by that report) holds every mean, std
and seed count; this script reads it back (:func:`medactive.bench.report.read_table_csv`) and
rewrites the ``.md`` and ``.tex`` beside it, so rendering fixes (marks of printed ties, the
names of the fully supervised references) reach committed results. A table whose Markdown has
rows the CSV cannot restore (strategies without any value) is left as it is and named.

Usage:
    python benchmarks/rerender_tables.py results/cpu-blood-500 [...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medactive.bench.report import read_table_csv, table_latex, table_markdown

sys.path.insert(0, str(Path(__file__).parent))
from survey_ranks import TABLE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="results/<grid> folders")
    args = parser.parse_args(argv)
    for folder in args.results:
        for csv_path in sorted((folder / "tables").glob("*.csv")):
            if not TABLE.match(csv_path.name):
                continue
            md_path = csv_path.with_suffix(".md")
            old = md_path.read_text()
            table = read_table_csv(csv_path.read_text(), title=old.splitlines()[0].strip("*"))
            new = table_markdown(table)
            if sum(line.startswith("| ") for line in new.splitlines()) != sum(
                    line.startswith("| ") for line in old.splitlines()):
                print(f"kept {md_path} (its CSV cannot restore every row)", file=sys.stderr)
                continue
            if new != old:
                md_path.write_text(new)
                csv_path.with_suffix(".tex").write_text(table_latex(table))
                print(f"rewrote {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
