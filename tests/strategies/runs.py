"""What the end-to-end strategy tests share: one smoke `medactive run` on the default data,
and the samples its first query picked."""

from __future__ import annotations

import csv
from pathlib import Path

from medactive.cli import main

#: 20 initial labels, one query of 10, smoke training, one torch thread, seed 0
SMOKE_RUN = ("run", "--data", "default", "--preset", "smoke", "--initial", "20", "--budget", "10",
             "--rounds", "1", "--threads", "1", "--seed", "0")


def smoke_run(out: Path, *extra: str) -> int:
    """``medactive run`` with :data:`SMOKE_RUN` into ``out``; its exit code."""
    return main([*SMOKE_RUN, "--out", str(out), *extra])


def queried(path: Path) -> list[str]:
    """Sample ids the run in ``path`` queried in round 1 (its ``selections.csv``)."""
    with open(Path(path) / "selections.csv") as fh:
        return [r["sample_id"] for r in csv.DictReader(fh) if r["round"] == "1"]
