"""``medactive bench`` (run a grid into a results folder) and ``medactive report`` (tables and
curves from it)."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

from medactive.bench.config import (
    describe_grid,
    describe_preset,
    list_presets,
    load_grid,
    resolve_encoders,
)
from medactive.bench.runner import Progress, check_grid, plan_jobs, run_grid
from medactive.bench.store import ResultStore, store_path
from medactive.errors import ConfigError


def add_parsers(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench", help="run a benchmark grid (datasets x strategies x budgets x seeds)",
        description="Run every unit of a grid into DIR/results.sqlite. Rerunning the same "
        "command skips finished rounds and redoes a round that was interrupted.")
    bench.add_argument("--config", metavar="FILE|PRESET",
                       help=f"a TOML grid file or a preset: {', '.join(list_presets())}")
    bench.add_argument("--out", metavar="DIR", help="results folder (created if missing)")
    bench.add_argument("--data-root", metavar="DIR",
                       help="folder holding the data (default for presets: ../shared/data)")
    bench.add_argument("--workers", type=int, default=1, help="local worker processes (default: 1, in this process)")
    bench.add_argument("--threads", type=int, default=None,
                       help="torch threads per worker (default: CPUs / workers)")
    bench.add_argument("--ray-address", metavar="ADDR", default=None,
                       help="run each unit as a Ray task: 'local' starts a local Ray "
                       "instance with --workers CPUs, else a cluster address (e.g. 'auto', "
                       "'ray://host:10001'); the workers must be able to import medactive")
    bench.add_argument("--ray-num-cpus", type=float, default=1, help="CPUs per Ray task (default: 1)")
    bench.add_argument("--ray-num-gpus", type=float, default=0, help="GPUs per Ray task (default: 0)")
    grid = bench.add_argument_group("grid overrides")
    grid.add_argument("--strategies", nargs="+", metavar="NAME", help="replace the strategies")
    grid.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="replace the seeds")
    grid.add_argument("--budgets", nargs="+", type=int, metavar="B",
                      help="replace every dataset's budgets")
    grid.add_argument("--rounds", type=int, help="replace the number of rounds T")
    grid.add_argument("--preset", help="replace the training preset (survey, cpu, smoke)")
    grid.add_argument("--epochs", type=int,
                      help="override the training preset's epochs (segmentation: iterations)")
    grid.add_argument("--device", help="auto, cpu or cuda")
    grid.add_argument("--selection-device", choices=["cpu", "cuda"],
                      help="replace where queries run: cpu (numpy) or cuda (torch on the GPU)")
    grid.add_argument("--references-only", action="store_true",
                      help="run only the fully supervised references (rounds' recipe and, "
                      "where the grid has converged_reference, converged), no AL units")
    grid.add_argument("--no-supervised", action="store_true",
                      help="skip the fully supervised reference runs")
    bench.add_argument("--dry-run", action="store_true",
                       help="show the units still to run and exit")
    bench.add_argument("--list-presets", action="store_true", help="list presets and exit")
    bench.add_argument("--describe", action="store_true",
                       help="print the preset's protocol and deviations and exit")
    bench.add_argument("--report", action="store_true", help="write DIR/report when done")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.set_defaults(func=cmd_bench)

    report = subparsers.add_parser(
        "report", help="tables, learning curves and statistics of a benchmark folder",
        description="Read DIR/results.sqlite and write DIR/report/: tables (.md/.csv/.tex) "
        "with mean ± std and best/second-best marks, learning curves (.png/.svg), area under "
        "the budget curve, pairwise penalty matrices and the survey's tables side by side.")
    report.add_argument("dir", metavar="DIR", help="a folder written by `medactive bench`")
    report.add_argument("--out", metavar="DIR", help="report folder (default: DIR/report)")
    report.add_argument("--no-plots", action="store_true", help="tables only")
    report.set_defaults(func=cmd_report)


class TqdmProgress(Progress):
    """A progress bar over rounds with ETA, and one summary line per finished unit."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = None

    def start(self, *, n_units: int, n_skipped: int, n_rounds: int) -> None:
        print(f"{n_units} units ({n_skipped} already complete), {n_rounds} rounds to run",
              flush=True)
        if self.enabled and n_rounds:
            from medactive.progress import progress_bar  # plain lines when not a terminal

            self.bar = progress_bar(n_rounds, desc="bench", unit="round", stream=sys.stderr)

    def advance(self, unit, row) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(str(unit), refresh=False)
            self.bar.update(1)

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def unit_done(self, unit, line: str) -> None:
        self._write(line)

    def unit_failed(self, unit, message: str) -> None:
        self._write(f"FAILED {unit}: {message}")

    def message(self, line: str) -> None:
        self._write(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def grid_from_args(args: argparse.Namespace):
    if not args.config:
        raise ConfigError("--config is required (a TOML file or one of: "
                          f"{', '.join(list_presets())})")
    grid = load_grid(args.config, data_root=args.data_root)
    changes = {"strategies": tuple(args.strategies) if args.strategies else None,
               "seeds": tuple(args.seeds) if args.seeds else None,
               "rounds": args.rounds, "epochs": args.epochs, "device": args.device,
               "selection_device": getattr(args, "selection_device", None),
               "preset": args.preset,
               "supervised_seeds": 0 if args.no_supervised else None}
    datasets = grid.datasets
    if args.budgets:
        datasets = tuple(replace(d, budgets=tuple(args.budgets)) for d in datasets)
    if args.strategies:  # a dataset's own strategy list would hide the override
        datasets = tuple(replace(d, strategies=()) for d in datasets)
    if args.preset or args.epochs:  # so would a dataset's own preset or epochs
        datasets = tuple(replace(d, preset=None if args.preset else d.preset,
                                 epochs=None if args.epochs else d.epochs) for d in datasets)
    if datasets != grid.datasets:
        changes["datasets"] = datasets
    return grid.with_overrides(**changes)


def format_preset_list(width: int = 100) -> str:
    """One entry per preset: its name, then its summary (the first paragraph of its description,
    whole, never cut mid-sentence) wrapped to ``width`` in a column after the longest name."""
    names = list_presets()
    column = max(map(len, names)) + 2
    entries = []
    for name in names:
        summary = " ".join(describe_preset(name).split("\n\n")[0].split())
        entries.append(textwrap.fill(summary, width=width, initial_indent=name.ljust(column),
                                     subsequent_indent=" " * column, break_long_words=False,
                                     break_on_hyphens=False))
    return "\n".join(entries)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.list_presets:
        print(format_preset_list())
        return 0
    if args.describe:
        if not args.config:
            raise ConfigError("--describe needs --config PRESET")
        grid = grid_from_args(args)
        text = describe_preset(args.config) if args.config in list_presets() else \
            grid.description
        print(text)
        print()
        # written from the grid as overridden on this command line, and from its presets
        print(describe_grid(grid))
        print()
        for spec in grid.datasets:
            print(f"dataset {spec.name}: {spec.data}, budgets {list(spec.budgets)}, "
                  f"strategies {list(grid.strategies_for(spec.name))}")
            engine = grid.engine_options(spec.name)
            if engine:
                print("  " + ", ".join(f"{k} {v}" for k, v in engine.items()))
        print(f"seeds {list(grid.seeds)}, T = {grid.rounds}, training preset {grid.preset!r}, "
              f"{len(grid.units())} AL units + {len(grid.supervised_units())} supervised")
        return 0
    if not args.out:
        raise ConfigError("--out DIR is required")
    if args.references_only and args.no_supervised:
        raise ConfigError("--references-only and --no-supervised exclude each other")
    grid = grid_from_args(args)
    out = Path(args.out)
    command = bench_command(args)
    if args.dry_run:
        check_grid(grid)
        if not store_path(out).exists():
            jobs = ([] if args.references_only else grid.units()) + grid.supervised_units()
            print(f"{len(jobs)} units to run into {out} (nothing stored yet):")
            for unit in jobs:
                print(f"  {unit}")
            return 0
        with ResultStore(out) as store:
            jobs, skipped = plan_jobs(resolve_encoders(grid, out), store, register=False,
                                      references_only=args.references_only)
        print(f"{len(jobs)} units to run, {skipped} complete:")
        for job in jobs:
            print(f"  {job.unit} (from round {len(job.completed)})")
        return 0

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with ResultStore(out) as store:
            progress = TqdmProgress(enabled=not args.no_progress)
            result = run_grid(grid, store, workers=args.workers, ray_address=args.ray_address,
                              threads=args.threads, ray_num_cpus=args.ray_num_cpus,
                              ray_num_gpus=args.ray_num_gpus, progress=progress,
                              command=command, references_only=args.references_only)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"{result.n_units} units: {result.n_finished} finished now, {result.n_skipped} "
          f"already complete, {len(result.failures)} failed; results in {store_path(out)}")
    for key, message in result.failures:
        print(f"  failed {key}: {message}", file=sys.stderr)
    if args.report:
        from medactive.bench.report import build_report

        report = build_report(out)
        print(f"report: {report.out_dir / 'report.md'}")
    elif not result.failures:
        print(f"next: medactive report {shlex.quote(str(out))}")
    return 1 if result.failures else 0


def bench_command(args: argparse.Namespace) -> str:
    """The ``medactive bench`` command line equivalent to ``args`` (recorded for the report)."""
    parts = ["medactive", "bench", "--config", args.config, "--out", args.out]
    for flag, value in (("--data-root", args.data_root), ("--rounds", args.rounds),
                        ("--preset", args.preset), ("--epochs", args.epochs),
                        ("--device", args.device),
                        ("--selection-device", getattr(args, "selection_device", None)),
                        ("--ray-address", args.ray_address)):
        if value is not None:
            parts += [flag, str(value)]
    for flag, values in (("--strategies", args.strategies), ("--seeds", args.seeds),
                         ("--budgets", args.budgets)):
        if values:
            parts += [flag, *map(str, values)]
    if args.workers != 1:
        parts += ["--workers", str(args.workers)]
    if args.no_supervised:
        parts.append("--no-supervised")
    if args.references_only:
        parts.append("--references-only")
    return shlex.join(parts)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def cmd_report(args: argparse.Namespace) -> int:
    from medactive.bench.report import build_report

    report = build_report(args.dir, out_dir=args.out, plots=not args.no_plots)
    n_tables = sum(1 for p in report.files if p.suffix == ".md" and p.parent.name == "tables")
    n_plots = sum(1 for p in report.files if p.suffix == ".png")
    print(f"wrote {n_tables} tables and {n_plots} plots to {report.out_dir} "
          f"(overview: {report.out_dir / 'report.md'})")
    return 0
