"""Run a benchmark grid into a results store: in-process, in local worker processes, or on Ray.

Every unit of the grid (see :mod:`medactive.bench.config`) is a *job*: build the task, read the
unit's finished rounds from the store, and run the AL loop from the first missing round
(:func:`~medactive.loop.active_loop.run_active_learning` with ``completed=``). Each finished
round is sent back as an event and written by the parent process alone, so the store has one
writer and workers may live on other machines (Ray). A round in progress when the run is killed
leaves no row; the next run redoes it, and since every random stream is derived from
``(seed, purpose, round)`` the redone round equals the one an uninterrupted run would produce.

Execution:

- ``workers=1`` (default): jobs run one after the other in this process.
- ``workers=N``: ``N`` spawned worker processes (``multiprocessing`` pool); events come back on
  a queue. Each worker uses ``threads`` torch threads (default: CPU count / N).
- ``ray_address``: each job is a Ray task (a streaming generator yielding its events);
  ``"local"`` starts a local Ray instance, anything else is passed to ``ray.init(address=...)``;
  an already initialised Ray is reused. Workers must be able to import medactive.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import multiprocessing as mp
import os
import queue as queue_module
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medactive.bench.config import (
    ENCODER_DIR,
    GridConfig,
    SupervisedUnit,
    Unit,
    resolve_encoders,
    split_strategy,
)
from medactive.bench.store import ResultStore, record_to_row, row_to_record
from medactive.errors import ConfigError, DataError, MedactiveError

logger = logging.getLogger(__name__)

Event = tuple[str, str, Any]  # (kind, unit key, payload)
TERMINAL = ("done", "error")


@dataclass(frozen=True)
class Job:
    """One unit to run, with what a worker needs (picklable).

    Attributes:
        unit: the AL or supervised unit.
        options: the unit's experiment options.
        completed: stored round rows to resume from (AL units).
        backend: module name of the task backend.
        threads: torch threads for the worker (``None``: leave as is).
        work_dir: the results folder, where a backend may keep caches that outlive a run
            (e.g. self-supervised weights, so a resumed grid does not pretrain again).
    """

    unit: Unit | SupervisedUnit
    options: dict[str, Any]
    completed: list[dict[str, Any]] = field(default_factory=list)
    backend: str = "medactive.bench.backend"
    threads: int | None = None
    work_dir: str | None = None


@dataclass
class GridResult:
    """What :func:`run_grid` did.

    Attributes:
        n_units: units in the grid (AL and supervised).
        n_skipped: units already complete in the store.
        n_finished: units completed by this run.
        failures: ``(unit key, message)`` of units that raised.
    """

    n_units: int = 0
    n_skipped: int = 0
    n_finished: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


class Progress:
    """Receives progress events (the CLI shows bars; this default logs summary lines)."""

    def start(self, *, n_units: int, n_skipped: int, n_rounds: int) -> None:
        logger.info("%d units, %d already complete, %d rounds to run", n_units, n_skipped,
                    n_rounds)

    def advance(self, unit: Unit | SupervisedUnit, row: dict[str, Any]) -> None:
        """One round (or one supervised run) finished."""

    def unit_done(self, unit: Unit | SupervisedUnit, line: str) -> None:
        logger.info("%s", line)

    def unit_failed(self, unit: Unit | SupervisedUnit, message: str) -> None:
        logger.error("%s failed: %s", unit, message)

    def message(self, line: str) -> None:
        """A line about a step outside the units (e.g. pretraining an encoder)."""
        logger.info("%s", line)

    def close(self) -> None:
        """The grid is over (or interrupted)."""


# -- planning ----------------------------------------------------------------------------------
def plan_jobs(grid: GridConfig, store: ResultStore, *, threads: int | None = None,
              register: bool = True, references_only: bool = False) -> tuple[list[Job], int]:
    """The jobs still to run and the number of units already complete.

    Checks (and with ``register``, records) every unit's options first, so a grid whose
    options conflict with stored results is refused before anything runs. With
    ``references_only``, only the fully supervised reference units.
    """
    jobs, skipped = [], 0
    work_dir = str(store.path.parent)
    units = [] if references_only else grid.units()
    for unit in units:
        if register:
            store.register_unit(unit, grid.unit_options(unit))
        else:
            store.check_unit(unit, grid.unit_options(unit))
    for unit in units:
        rows = store.rounds(unit=unit)
        if len(rows) >= grid.rounds + 1:
            skipped += 1
            continue
        jobs.append(Job(unit, grid.unit_options(unit), rows, grid.backend, threads, work_dir))
    for unit in grid.supervised_units():
        if store.has_supervised(unit):
            skipped += 1
            continue
        jobs.append(Job(unit, grid.unit_options(unit), [], grid.backend, threads, work_dir))
    return jobs, skipped


def check_grid(grid: GridConfig) -> None:
    """Check strategy names and data before any work starts.

    Raises:
        ConfigError: unknown backend or strategy, missing dataset.
    """
    try:
        backend = importlib.import_module(grid.backend)
    except ImportError as exc:
        raise ConfigError(f"grid {grid.name!r}: cannot import backend {grid.backend!r} "
                          f"({exc})") from exc
    from medactive.strategies import create_strategy, list_strategies

    known = set(list_strategies())
    for spec in grid.datasets:
        at = f"grid {grid.name!r}, dataset {spec.name!r}"
        names = [split_strategy(s)[0] for s in grid.strategies_for(spec.name)]
        unknown = [s for s in names if s not in known and ":" not in s]
        if unknown:
            raise ConfigError(f"{at}: unknown strategy {', '.join(map(repr, unknown))}; choose "
                              f"from: {', '.join(sorted(known))} (or SAMPLER:SCORE, see "
                              "`medactive strategies`)")
        for name in (s for s in names if ":" in s):  # composed: parse with default options
            try:
                create_strategy(name)
            except ConfigError as exc:
                raise ConfigError(f"{at}: {exc}") from None
    validate = getattr(backend, "validate", None)
    if validate is not None:
        for spec in grid.datasets:
            unit = Unit(spec.name, grid.strategies_for(spec.name)[0], spec.budgets[0],
                        grid.seeds[0])
            validate(grid.unit_options(unit))


# -- encoders ----------------------------------------------------------------------------------
def pretrain_encoders(grid: GridConfig, out_dir: str | Path, datasets: set[str] | None = None,
                      progress: Progress | None = None) -> dict[str, Path]:
    """Pretrain each dataset's encoder table into ``out_dir/encoders/<data>-<hash>.pt``
    (the file :func:`~medactive.bench.config.resolve_encoders` gives its units), before any of
    its units runs.

    One encoder per dataset serves every seed, strategy and budget (a fixed starting point,
    like a downloaded checkpoint). The backend's ``pretrain_encoder(options, table, path)``
    does the work; it resumes a killed pretraining and does nothing when ``path`` already holds
    the same encoder. Runs in this (the parent) process, so workers only read the file.

    Args:
        grid: the grid with its encoder tables (not yet resolved).
        out_dir: the results folder.
        datasets: only these datasets (those with units left to run); ``None``: all.
        progress: told one line before and after each encoder.

    Returns:
        ``dataset -> encoder file`` of the datasets pretrained (or found ready).

    Raises:
        ConfigError: the backend cannot pretrain.
    """
    progress = progress or Progress()
    folder = Path(out_dir).expanduser().absolute() / ENCODER_DIR
    files: dict[str, Path] = {}
    for spec in grid.datasets:
        table = grid.encoder_table(spec.name)
        if table is None or (datasets is not None and spec.name not in datasets):
            continue
        backend = importlib.import_module(grid.backend)
        pretrain = getattr(backend, "pretrain_encoder", None)
        if pretrain is None:
            raise ConfigError(f"grid {grid.name!r}: backend {grid.backend!r} cannot pretrain "
                              "encoder tables; give encoder as a file")
        path = folder / grid.encoder_file(spec.name)
        if path in files.values():  # another entry over the same data and table
            files[spec.name] = path
            continue
        unit = Unit(spec.name, grid.strategies_for(spec.name)[0], spec.budgets[0],
                    grid.seeds[0])
        options = {k: v for k, v in grid.unit_options(unit).items() if k not in _ENGINE_ONLY}
        progress.message(f"encoder of {spec.name}: {table['method']} ({table['model']}, width "
                         f"{table['width']}, {table['epochs']} epochs, seed {table['seed']}) "
                         f"-> {path}")
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        pretrain(options, table, str(path))
        progress.message(f"encoder of {spec.name} ready ({time.perf_counter() - start:.0f} s)")
        files[spec.name] = path
    return files


#: unit options about how rounds train, not the data: left out of the pretraining's options
_ENGINE_ONLY = ("encoder", "encoder_weights", "train_mode", "semi_supervised", "semi_options",
                "ssl", "initial_strategy", "pseudo_label")


# -- running -----------------------------------------------------------------------------------
def run_grid(grid: GridConfig, store: ResultStore, *, workers: int = 1,
             ray_address: str | None = None, threads: int | None = None,
             ray_num_cpus: float = 1, ray_num_gpus: float = 0,
             progress: Progress | None = None, command: str = "",
             references_only: bool = False) -> GridResult:
    """Run every unfinished unit of ``grid``, writing each finished round into ``store``.

    Args:
        grid: the grid.
        store: the results store (finished rounds are skipped, partial units resumed).
        workers: local worker processes (``1``: run in this process).
        ray_address: run each unit as a Ray task (``"local"`` or a cluster address).
        threads: torch threads per worker (default: CPU count / ``workers`` for a pool, unset
            in-process, ``ray_num_cpus`` on Ray).
        ray_num_cpus, ray_num_gpus: resources each Ray task asks for.
        progress: receives progress events.
        command: the command line, recorded in the store for the report.
        references_only: run only the fully supervised references (e.g. a converged
            reference for a grid whose rounds are stored elsewhere).

    Returns:
        A :class:`GridResult`; failed units are listed there (and in the store), not raised.

    Raises:
        ConfigError: invalid grid (unknown strategy, missing data, conflicting stored options).
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    check_grid(grid)
    progress = progress or Progress()
    if ray_address is not None and threads is None:
        threads = max(1, int(ray_num_cpus))
    elif workers > 1 and threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers)
    with store.writer_lock():
        tables, grid = grid, resolve_encoders(grid, store.path.parent)
        jobs, skipped = plan_jobs(grid, store, threads=threads, references_only=references_only)
        pretrain_encoders(tables, store.path.parent, {job.unit.dataset for job in jobs},
                          progress)
        store.add_grid(grid, command)
        result = GridResult(n_units=len(jobs) + skipped, n_skipped=skipped)
        n_rounds = sum(1 if isinstance(j.unit, SupervisedUnit)
                       else grid.rounds + 1 - len(j.completed) for j in jobs)
        progress.start(n_units=result.n_units, n_skipped=skipped, n_rounds=n_rounds)
        handler = _EventHandler(grid, store, {j.unit.key: j for j in jobs}, progress, result)
        try:
            if not jobs:
                return result
            if ray_address is not None:
                _run_ray(jobs, handler, ray_address, ray_num_cpus, ray_num_gpus, workers)
            elif workers > 1 and len(jobs) > 1:
                _run_pool(jobs, handler, min(workers, len(jobs)), threads)
            else:
                if threads is not None:
                    _set_threads(threads)
                for job in jobs:
                    execute_job(job, handler)
        finally:
            progress.close()
    return result


class _EventHandler:
    """Writes worker events into the store and tells the progress reporter (parent only)."""

    def __init__(self, grid: GridConfig, store: ResultStore, jobs: dict[str, Job],
                 progress: Progress, result: GridResult) -> None:
        self.grid, self.store, self.jobs = grid, store, jobs
        self.progress, self.result = progress, result
        self.started: dict[str, float] = {}
        self.n_done = result.n_skipped

    def __call__(self, event: Event) -> None:
        kind, key, payload = event
        job = self.jobs[key]
        unit = job.unit
        if kind == "start":
            self.started[key] = time.perf_counter()
            self.store.add_attempt(unit, payload["from_round"], payload["describe"],
                                   payload.get("host"))
        elif kind == "round":
            self.store.add_round(unit, payload)
            self.progress.advance(unit, payload)
        elif kind == "supervised":
            self.store.add_supervised(unit, metrics=payload["metrics"],
                                      n_labeled=payload["n_labeled"], options=job.options,
                                      seconds=payload["seconds"])
            self.progress.advance(unit, payload)
        elif kind == "done":
            self.n_done += 1
            self.result.n_finished += 1
            elapsed = time.perf_counter() - self.started.get(key, time.perf_counter())
            self.progress.unit_done(unit, f"[{self.n_done}/{self.result.n_units}] "
                                    f"{self._summary(unit)} ({elapsed:.1f} s)")
        elif kind == "error":
            message = payload["message"]
            self.store.add_failure(unit, payload.get("traceback") or message)
            self.result.failures.append((key, message))
            self.progress.unit_failed(unit, message)
        else:  # pragma: no cover - events are produced by execute_job only
            raise ValueError(f"unknown event {kind!r}")

    def _summary(self, unit: Unit | SupervisedUnit) -> str:
        metric_names = self.grid.dataset(unit.dataset).metrics
        if isinstance(unit, SupervisedUnit):
            rows = [r for r in self.store.supervised(unit.dataset, converged=unit.converged)
                    if r["seed"] == unit.seed]
            metrics = rows[0]["metrics"] if rows else {}
            names = metric_names or [k for k in metrics if k.startswith("test_")][:2]
            text = ", ".join(f"{m} {_fmt(metrics.get(m))}" for m in names)
            return f"{unit}: {text}"
        rows = self.store.rounds(unit=unit)
        if not rows:
            return f"{unit}: no rounds"
        names = metric_names or [k for k in rows[-1]["metrics"] if k.startswith("test_")][:2]
        text = ", ".join(f"{m} {_fmt(rows[0]['metrics'].get(m))} -> "
                         f"{_fmt(rows[-1]['metrics'].get(m))}" for m in names)
        return f"{unit}: {text} over {len(rows)} rounds, {rows[-1]['n_labeled']} labels"


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# -- one job (runs in a worker) ----------------------------------------------------------------
def execute_job(job: Job, emit: Callable[[Event], None]) -> None:
    """Run one job, sending ``start``, ``round``/``supervised`` and ``done`` or ``error`` events.

    Errors are reported as an ``error`` event (with the traceback), never raised, so one bad
    unit does not stop a grid; ``KeyboardInterrupt`` and ``SystemExit`` propagate.
    """
    key = job.unit.key
    try:
        backend = importlib.import_module(job.backend)
        task = _cached_task(backend, job)
        describe = _describe(task)
        info = {"from_round": len(job.completed), "describe": describe,
                "host": socket.gethostname(), "pid": os.getpid()}
        if isinstance(job.unit, SupervisedUnit):
            emit(("start", key, info))
            start = time.perf_counter()
            metrics = backend.supervised_reference(job.options, task)
            emit(("supervised", key, {
                "metrics": {k: _json_float(v) for k, v in metrics.items()},
                "n_labeled": len(task.pool_ids), "seconds": time.perf_counter() - start}))
        else:
            _check_pool(job, task)
            completed = [row_to_record(row) for row in job.completed]
            emit(("start", key, info))
            pool_ids = task.pool_ids
            backend_loop = backend.loop_config(job.options)
            from medactive.loop.active_loop import run_active_learning
            from medactive.query_device import array_device

            run_active_learning(task, backend_loop, completed=completed,
                                array_device=array_device(
                                    job.options.get("selection_device", "cpu"),
                                    name="selection_device"),
                                on_round=lambda rec: emit(("round", key,
                                                           record_to_row(rec, pool_ids))))
        emit(("done", key, None))
    except Exception as exc:  # reported as an event: one bad unit does not stop the grid
        if isinstance(exc, MedactiveError):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
        logger.debug("unit %s failed", key, exc_info=True)
        emit(("error", key, {"message": message, "traceback": traceback.format_exc()}))


#: options that define a task; units differing only in strategy, budget or rounds share it
_TASK_OPTIONS = ("data", "task", "preset", "epochs", "device", "seed", "data_options",
                 "train_options", "ssl", "encoder", "encoder_weights", "train_mode",
                 "semi_supervised", "semi_options")
_TASK_CACHE: dict[str, Any] = {}


def _cached_task(backend, job: Job):
    """The task of ``job``, reused from the previous job of this process when they share
    data, preset and seed (seed-major grids run every strategy and budget of a seed in a row;
    tasks keep no random state between calls, so reuse does not change results)."""
    import json

    cache_key = json.dumps([job.backend] + [job.options.get(k) for k in _TASK_OPTIONS],
                           sort_keys=True, default=str)
    if _TASK_CACHE.get("key") != cache_key:
        _TASK_CACHE.clear()  # free the previous dataset before loading the next
        kwargs = ({"work_dir": job.work_dir} if job.work_dir is not None and "work_dir" in
                  inspect.signature(backend.build_task).parameters else {})
        _TASK_CACHE["task"] = backend.build_task(job.options, **kwargs)
        _TASK_CACHE["key"] = cache_key
    return _TASK_CACHE["task"]


def _check_pool(job: Job, task) -> None:
    """Refuse to resume when the pool's sample ids differ from the stored selections."""
    pool_ids = np.asarray(task.pool_ids)
    for row in job.completed:
        for idx_key, ids_key in (("added_idx", "added_ids"), ("queried_idx", "queried_ids"),
                                 ("pseudo_idx", "pseudo_ids"),
                                 ("next_pseudo_idx", "next_pseudo_ids")):
            idx = np.asarray(row.get(idx_key) or [], dtype=np.int64)
            if idx.size and (idx.max() >= len(pool_ids)
                             or [str(s) for s in pool_ids[idx]] != list(row[ids_key])):
                raise DataError(f"unit {job.unit.key}: the stored round {row['round']} selected "
                                "samples that are not at the same pool positions in the data "
                                "now (did the dataset change?); use another --out folder")


def _describe(task) -> dict[str, Any]:
    try:
        return dict(task.describe())
    except Exception:  # noqa: BLE001 - a description is informative only
        return {}


def _json_float(value: Any) -> float | None:
    value = float(value)
    return None if not np.isfinite(value) else value


def _set_threads(threads: int) -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(threads)


# -- local worker processes --------------------------------------------------------------------
_WORKER_QUEUE = None
_WORKER_PARENT: int | None = None


def _init_worker(events, parent_pid: int, threads: int | None) -> None:
    import signal

    global _WORKER_QUEUE, _WORKER_PARENT
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    _WORKER_QUEUE, _WORKER_PARENT = events, parent_pid
    if threads is not None:
        _set_threads(threads)


def _worker_emit(event: Event) -> None:
    if os.getppid() != _WORKER_PARENT:
        os._exit(1)  # the parent is gone: nobody would store this, stop computing
    _WORKER_QUEUE.put(event)


def _worker_run(job: Job) -> None:
    execute_job(job, _worker_emit)


def _run_pool(jobs: list[Job], handle: _EventHandler, workers: int,
              threads: int | None) -> None:
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    pending = {job.unit.key for job in jobs}
    pids: dict[str, int] = {}
    pool = ctx.Pool(workers, initializer=_init_worker, initargs=(events, os.getpid(), threads))
    try:
        results = {job.unit.key: pool.apply_async(_worker_run, (job,)) for job in jobs}
        pool.close()
        while pending:
            try:
                kind, key, payload = events.get(timeout=0.5)
            except queue_module.Empty:
                for key in sorted(pending):
                    lost = None
                    if results[key].ready() and not results[key].successful():
                        lost = "the worker raised outside the job"
                    elif key in pids and not _alive(pids[key]):
                        lost = f"worker process {pids[key]} died"
                    if lost:
                        pending.discard(key)
                        handle(("error", key, {"message": lost}))
                continue
            if kind == "start":
                pids[key] = payload.get("pid")
            handle((kind, key, payload))
            if kind in TERMINAL:
                pending.discard(key)
        pool.join()
    finally:
        pool.terminate()


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True


# -- Ray ---------------------------------------------------------------------------------------
def _ray_job(job: Job):
    """A Ray generator task: run the job in a thread and yield its events as they come."""
    events: queue_module.Queue = queue_module.Queue()
    if job.threads is not None:
        _set_threads(job.threads)
    thread = threading.Thread(target=execute_job, args=(job, events.put), daemon=True)
    thread.start()
    while True:
        event = events.get()
        yield event
        if event[0] in TERMINAL:
            break
    thread.join()


def _run_ray(jobs: list[Job], handle: _EventHandler, address: str, num_cpus: float,
             num_gpus: float, workers: int) -> None:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--ray-address needs Ray: pip install 'medactive[ray]'") from exc
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
        if address == "local":
            kwargs["num_cpus"] = max(workers, int(num_cpus))
        else:
            kwargs["address"] = address
        ray.init(**kwargs)
        started = True
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0,
                        num_returns="streaming")(_ray_job)
    generators = {remote.remote(job): job for job in jobs}
    try:
        while generators:
            ready, _ = ray.wait(list(generators), num_returns=1, timeout=1.0)
            for gen in ready:
                job = generators[gen]
                try:
                    event = ray.get(next(gen))
                except StopIteration:
                    del generators[gen]
                    continue
                except Exception as exc:  # noqa: BLE001 - a lost task fails its unit only
                    del generators[gen]
                    handle(("error", job.unit.key, {"message": f"Ray task failed: {exc}"}))
                    continue
                handle(event)
    finally:
        for gen in generators:
            try:
                ray.cancel(gen, force=True)
            except Exception as exc:  # noqa: BLE001 - best effort on interruption
                logger.debug("could not cancel a Ray task: %s", exc)
        if started:
            ray.shutdown()
