"""Deep ensembles: ``M`` independently seeded models per round, evaluated by their mean.

A task trained with ``ensemble_size = M > 1`` (``medactive run --ensemble-size M``, train
option ``ensemble_size``) fits ``M`` members on the same labels, each from its own seed
(:func:`member_seeds`: member 0 keeps the round's seed, so it is the model an ``M = 1`` run
trains, and the others derive theirs from it), and returns an :class:`Ensemble`. The round's
model is then the ensemble:

- its metrics are those of the members' mean probabilities (``rounds.csv`` gains a column
  ``ensemble_size``; run.json's task names the ensemble);
- its predictions give strategies ``"member_probas"`` ``[n, c, M]`` (the members'
  probabilities, for ``ensemble_entropy``, ``ensemble_bald``, ``qbc_vote_entropy``,
  ``qbc_kl``), ``"probas"`` = their mean, and ``"embeddings"`` and ``"mc_probas"`` of member 0;
- it saves and loads as one state dict (keys ``members.<i>.…``, :func:`ensemble_size_of`).

Members train one after the other, or in ``W`` parallel worker processes
(:func:`fit_ensemble` with ``workers``; ``medactive run --ensemble-workers N``, by default
:func:`resolve_ensemble_workers`: as many members at once as the usable cores hold at the
run's torch threads each, so ``W x threads <= cores``). Each member's seed and thread count
are the same whatever ``W``, so its weights, the round's probabilities and the selected
samples are identical with 1 and with ``W`` workers; the worker count is an execution
setting (run.json ``execution``), never part of the run's config or results. Workers are
started per round from a ``forkserver`` that imported torch and the member's code once per
run (``spawn`` where there is no forkserver: each worker then imports them itself), so no
worker inherits a parent's torch thread pools and a round pays no repeated imports; a
failing member stops the round with one :class:`EnsembleWorkerError` (or its own
:class:`~medactive.errors.MedactiveError`), never a hung pool. A daemonic process (a
``medactive bench`` worker, which may not have children) always trains serially.

References:
    Lakshminarayanan, Pritzel and Blundell, "Simple and scalable predictive uncertainty
    estimation using deep ensembles", NeurIPS 2017; Beluch et al., "The power of ensembles for
    active learning in image classification", CVPR 2018.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import torch
from torch import nn

from medactive._random import derive_seed
from medactive.errors import ConfigError, MedactiveError

logger = logging.getLogger(__name__)


class EnsembleWorkerError(RuntimeError):
    """An ensemble member failed (or its worker process died) while training in parallel."""


class Ensemble(nn.Module):
    """The members of a deep ensemble, as one module (``.to``, ``.eval``, ``state_dict``).

    It has no forward pass: the task runs each member and averages their probabilities.

    Args:
        members: the trained models (at least one).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    @property
    def n_members(self) -> int:
        return len(self.members)

    def __getitem__(self, i: int) -> nn.Module:
        return self.members[i]

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)


def check_ensemble_size(value: Any, *, name: str = "ensemble_size") -> int:
    """``value`` as an int ``>= 1``.

    Raises:
        ConfigError: not an integer, or below 1.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1 (1: one model, no ensemble), got "
                          f"{value!r}")
    return int(value)


def member_seeds(seed: int, size: int) -> list[int]:
    """Training seeds of ``size`` members: ``seed`` itself for member 0, then
    ``derive_seed(seed, "ensemble member", i)``; the same on every machine."""
    return [int(seed)] + [derive_seed(seed, "ensemble member", i) for i in range(1, size)]


def check_ensemble_workers(value: Any, *, name: str = "--ensemble-workers") -> int | None:
    """``value`` as an int ``>= 1``, or ``None`` (choose from the cores).

    Raises:
        ConfigError: not an integer, or below 1.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1 (1: members one after the other), "
                          f"got {value!r}")
    return int(value)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_ensemble_workers(requested: int | None, size: int, *, threads: int | None = None,
                             cpus: int | None = None) -> tuple[int, int]:
    """How many worker processes train ``size`` members, and the torch threads of each.

    Args:
        requested: the worker count asked for (``None``: choose from the cores).
        size: the number of members ``M``.
        threads: the run's torch threads per process (default ``torch.get_num_threads()``).
        cpus: the usable cores (default :func:`usable_cpus`).

    Returns:
        ``(workers, threads_per_worker)``. ``None`` gives ``min(M, cpus // threads)`` workers
        of ``threads`` threads each (never oversubscribed, and every member trains at the
        run's thread count, as it does serially). An explicit count is capped at ``M`` and
        its workers get ``min(threads, cpus // workers)`` threads (at least 1; a warning when
        that still oversubscribes). A daemonic process gets ``(1, threads)``.

    Example:
        >>> resolve_ensemble_workers(None, 3, threads=1, cpus=2)
        (2, 1)
    """
    threads = int(threads or torch.get_num_threads())
    cpus = int(cpus or usable_cpus())
    if requested is None:
        workers = max(1, min(size, cpus // threads))
    else:
        workers = max(1, min(int(requested), size))
    if workers > 1 and multiprocessing.current_process().daemon:
        logger.info("ensemble members train serially: a daemonic process (e.g. a bench "
                    "worker) cannot start worker processes")
        workers = 1
    if workers == 1:
        return 1, threads
    if requested is not None:
        threads = max(1, min(threads, cpus // workers))
        if workers * threads > cpus:
            logger.warning("%d ensemble workers x %d thread on %d cores oversubscribe them",
                           workers, threads, cpus)
    return workers, threads


def fit_ensemble(fit_member: Callable[[int, Any], nn.Module], *, size: int, seed: int,
                 init_model: Any | None = None, workers: int = 1,
                 threads: int | None = None) -> Ensemble:
    """Train ``size`` members with ``fit_member(member_seed, member_init)``.

    Args:
        fit_member: trains one model from a seed, starting from ``member_init`` (``None``:
            a fresh model). With ``workers > 1`` it must pickle (a module-level function or
            an object such as the classification task's member fit).
        size: the number of members ``M``.
        seed: the round's training seed (:func:`member_seeds`).
        init_model: fine-tuning: the previous round's model; member ``i`` starts from its
            member ``i`` (a single model: every member starts from it).
        workers: train this many members at once in worker processes (:func:`_context`;
            1: one after the other in this process). The result does not depend on it.
        threads: torch threads of each worker (default: this process's).

    Returns:
        The :class:`Ensemble`, in eval mode.

    Raises:
        EnsembleWorkerError: a member raised (its type, message and seed are named; the
            worker's traceback is the cause) or a worker process died. A member's
            :class:`~medactive.errors.MedactiveError` is re-raised as itself.
    """
    seeds = member_seeds(seed, size)
    inits = [init_model[i % len(init_model)] if isinstance(init_model, Ensemble) else init_model
             for i in range(size)]
    if workers <= 1 or size == 1:
        members = [fit_member(s, init) for s, init in zip(seeds, inits)]
    else:
        members = _fit_parallel(fit_member, seeds, inits, workers=min(workers, size),
                                threads=int(threads or torch.get_num_threads()))
    return Ensemble(members).eval()


def _fit_parallel(fit_member: Callable[[int, Any], nn.Module], seeds: list[int],
                  inits: list[Any], *, workers: int, threads: int) -> list[nn.Module]:
    """The members of :func:`fit_ensemble` trained by ``workers`` worker processes."""
    try:
        payload = pickle.dumps(fit_member)
    except Exception as exc:  # any pickling failure: cannot run in parallel
        raise EnsembleWorkerError(f"ensemble members cannot train in worker processes: the "
                                  f"member fit does not pickle ({type(exc).__name__}: {exc}); "
                                  "use --ensemble-workers 1") from exc
    logger.info("training %d ensemble members in %d worker processes (%d torch thread(s) "
                "each)", len(seeds), workers, threads)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(fit_member),
                               initializer=_init_worker, initargs=(payload, threads))
    try:
        futures = [pool.submit(_fit_in_worker, s, None if init is None else pickle.dumps(init))
                   for s, init in zip(seeds, inits)]
        wait(futures, return_when=FIRST_EXCEPTION)
        for i, future in enumerate(futures):
            if future.done() and future.exception() is not None:
                _raise_member_error(i, seeds[i], future.exception())
        return [pickle.loads(future.result()) for future in futures]
    finally:  # after a failure: queued members are cancelled, running ones finish
        pool.shutdown(wait=True, cancel_futures=True)


def _context(fit_member: Any) -> multiprocessing.context.BaseContext:
    """``forkserver`` preloading torch, this module and ``fit_member``'s module (workers fork
    from a process that imported them once, and that holds no torch threads), else
    ``spawn``. The preload takes effect when this process first starts its forkserver."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    module = getattr(fit_member, "__module__", None) or type(fit_member).__module__
    ctx.set_forkserver_preload(["torch", __name__]
                               + ([module] if module and module != "__main__" else []))
    return ctx


def _raise_member_error(i: int, seed: int, exc: BaseException) -> None:
    if isinstance(exc, MedactiveError):
        raise exc
    if isinstance(exc, BrokenProcessPool):
        raise EnsembleWorkerError("a worker process died while training the ensemble's "
                                  "members (out of memory or killed?); --ensemble-workers 1 "
                                  "trains them in this process") from exc
    raise EnsembleWorkerError(f"ensemble member {i} (seed {seed}) failed in a worker process: "
                              f"{type(exc).__name__}: {exc}") from exc


#: the member fit of this worker process (set once by :func:`_init_worker`)
_WORKER_FIT: Callable[[int, Any], nn.Module] | None = None


def _init_worker(payload: bytes, threads: int) -> None:
    global _WORKER_FIT
    torch.set_num_threads(threads)
    _WORKER_FIT = pickle.loads(payload)


def _fit_in_worker(seed: int, init: bytes | None) -> bytes:
    # the model goes back as plain pickle bytes (a copy), not through torch's shared-memory
    # file descriptors, which would tie the parent to this process's lifetime
    model = _WORKER_FIT(seed, None if init is None else pickle.loads(init))
    return pickle.dumps(model)


def mean_probas(member_probas: Sequence[np.ndarray]) -> np.ndarray:
    """The ensemble's prediction: the members' ``[n, c]`` probabilities averaged, ``[n, c]``."""
    return np.mean(np.stack(member_probas, axis=-1), axis=-1)


_MEMBER_KEY = re.compile(r"^members\.(\d+)\.")


def ensemble_size_of(state: Mapping[str, Any]) -> int | None:
    """The number of members of a saved :class:`Ensemble` state dict (``None``: the state of
    a single model)."""
    found = [_MEMBER_KEY.match(k) for k in state]
    if not found or not all(found):
        return None
    return 1 + max(int(m.group(1)) for m in found)


def member_state(state: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Member ``i``'s own state dict out of a saved :class:`Ensemble` state."""
    prefix = f"members.{i}."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
