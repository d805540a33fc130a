"""The results store of a benchmark: one SQLite database per output folder.

Tables:

- ``rounds``: one row per finished ``(dataset, strategy, budget, seed, round)``: ``n_labeled``,
  metrics (JSON ``{"val_x": v, "test_x": v}``), the batch that formed the round's labeled set
  (``added_*``: the initial set in round 0) and the batch its model selected (``queried_*``),
  each as pool indices, sample ids and scores (JSON), and wall times. With pseudo-labelling
  (CEAL), nullable ``pseudo_*`` columns hold the pseudo-labelled set the round's model trained on
  and ``next_pseudo_*`` the set it chose for the next round (indices, ids, labels; JSON). They
  are added by ``ALTER TABLE`` the first time such a round is stored, so a database of an
  earlier version is never altered by plain runs, and reads it as before (``NULL``: none).
- ``supervised``: one row per fully supervised reference run ``(dataset, seed)`` with the
  rounds' recipe (budget-matched); ``converged``: the same for references trained to a
  validation plateau (``converged_reference`` grids).
- ``units``: the experiment options of every unit ever registered (a rerun with other options
  for the same unit is refused, so a table never mixes protocols).
- ``attempts``: one row each time a unit is started (task description, host, resumed round).
- ``failures``: units that raised, with the message.
- ``meta``: the grid configs run into this store.

Finished results are never rewritten: rows are only inserted, a unique key per round refuses
duplicates, and triggers refuse ``UPDATE`` and ``DELETE`` on ``rounds`` and ``supervised``.
A unit killed mid-round has no row for that round; the runner redoes it from the stored rounds
(``completed_rounds``). The database runs in WAL mode with a busy timeout, so a reader (the
report) or another writer may open it concurrently.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np

from medactive.bench.config import GridConfig, SupervisedUnit, Unit
from medactive.errors import ConfigError, DataError
from medactive.loop.active_loop import RoundRecord

logger = logging.getLogger(__name__)

DB_NAME = "results.sqlite"
SCHEMA_VERSION = 1

#: unit options that may change between runs without changing results (paths, placement)
VOLATILE_OPTIONS = ("data", "device", "selection_device")

#: the base columns of ``rounds``, in table order
_ROUND_COLUMNS = ("dataset", "strategy", "budget", "seed", "round", "n_labeled", "metrics",
                  "added_idx", "added_ids", "added_scores", "queried_idx", "queried_ids",
                  "queried_scores", "seconds", "query_seconds", "finished_at")
#: nullable JSON columns added later (CEAL pseudo-labels), by ``ALTER TABLE`` when first needed
PSEUDO_COLUMNS = ("pseudo_idx", "pseudo_ids", "pseudo_labels", "next_pseudo_idx",
                  "next_pseudo_ids", "next_pseudo_labels")
_JSON_COLUMNS = ("metrics", "added_idx", "added_ids", "added_scores", "queried_idx",
                 "queried_ids", "queried_scores") + PSEUDO_COLUMNS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grids (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    command TEXT NOT NULL,
    started_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS units (
    dataset TEXT NOT NULL,
    strategy TEXT NOT NULL,
    budget INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    options TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (dataset, strategy, budget, seed)
);
CREATE TABLE IF NOT EXISTS rounds (
    dataset TEXT NOT NULL,
    strategy TEXT NOT NULL,
    budget INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    round INTEGER NOT NULL,
    n_labeled INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    added_idx TEXT NOT NULL,
    added_ids TEXT NOT NULL,
    added_scores TEXT NOT NULL,
    queried_idx TEXT NOT NULL,
    queried_ids TEXT NOT NULL,
    queried_scores TEXT NOT NULL,
    seconds REAL NOT NULL,
    query_seconds REAL NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (dataset, strategy, budget, seed, round)
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    unit TEXT NOT NULL,
    from_round INTEGER NOT NULL,
    describe TEXT NOT NULL,
    host TEXT NOT NULL,
    started_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    unit TEXT NOT NULL,
    message TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TRIGGER IF NOT EXISTS rounds_no_update BEFORE UPDATE ON rounds
BEGIN SELECT RAISE(ABORT, 'finished results are never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS rounds_no_delete BEFORE DELETE ON rounds
BEGIN SELECT RAISE(ABORT, 'finished results are never deleted'); END;
"""

#: the two fully supervised reference tables (rounds' recipe; converged), same columns,
#: finished rows never rewritten nor deleted
_REFERENCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS {t} (
    dataset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    n_labeled INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    options TEXT NOT NULL,
    seconds REAL NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (dataset, seed)
);
CREATE TRIGGER IF NOT EXISTS {t}_no_update BEFORE UPDATE ON {t}
BEGIN SELECT RAISE(ABORT, 'finished results are never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS {t}_no_delete BEFORE DELETE ON {t}
BEGIN SELECT RAISE(ABORT, 'finished results are never deleted'); END;
"""
_SCHEMA += "".join(
    _REFERENCE_SCHEMA.format(t=t) for t in ("supervised", "converged"))


def store_path(directory: str | Path) -> Path:
    """The database file of a benchmark output folder."""
    return Path(directory) / DB_NAME


def _same_grid_encoder(a: Any, b: Any) -> bool:
    """Two paths of one pretrained encoder table: ``.../encoders/<dataset>-<hash>.pt`` with the
    same name (the hash covers its settings), so a moved results folder still resumes."""
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    pa, pb = Path(a), Path(b)
    return pa.name == pb.name and pa.parent.name == pb.parent.name == "encoders"


class ResultStore:
    """The SQLite results store of one benchmark folder.

    Args:
        path: the database file (see :func:`store_path`) or the folder holding it.
        create: create the folder and database when missing (else raise ``DataError``).
        timeout: seconds to wait for a lock held by another connection.

    Example:
        >>> store = ResultStore("bench-out")  # doctest: +SKIP
        >>> store.completed_rounds(Unit("pneumoniamnist", "entropy", 50, 0))  # doctest: +SKIP
        []
    """

    def __init__(self, path: str | Path, *, create: bool = True, timeout: float = 60.0) -> None:
        path = Path(path)
        if path.is_dir() or path.suffix != ".sqlite":
            path = store_path(path)
        if not path.exists():
            if not create:
                raise DataError(f"{path}: no results database (run `medactive bench --out "
                                f"{path.parent}` first)")
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if create:
                self._conn.executescript(_SCHEMA)
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                   (str(SCHEMA_VERSION),))
            version = self._conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{path}: not a readable results database ({exc})") from exc
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise DataError(f"{path}: results schema version {version and version[0]}, this "
                            f"medactive reads version {SCHEMA_VERSION}")

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold the folder's writer lock: one ``medactive bench`` per results folder.

        The lock (``flock`` on ``results.sqlite.lock``) is released when the holder exits, even
        when it is killed, so a rerun after a crash never finds a stale lock.

        Raises:
            ConfigError: another process holds the lock.
        """
        import fcntl

        path = self.path.with_name(self.path.name + ".lock")
        with open(path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise ConfigError(f"{self.path.parent}: a benchmark is already running into "
                                  f"this folder ({holder}); wait for it or use another --out"
                                  ) from exc
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
            fh.flush()
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- grids and units -------------------------------------------------------------------
    def add_grid(self, grid: GridConfig, command: str = "") -> None:
        """Record that ``grid`` was run into this store by ``command`` (the report reads the
        latest grid and lists the commands)."""
        with self._transaction() as conn:
            conn.execute("INSERT INTO grids (name, config, command, started_at) "
                         "VALUES (?, ?, ?, ?)",
                         (grid.name, json.dumps(grid.to_dict()), command, time.time()))

    def commands(self) -> list[str]:
        """The distinct commands that ran grids into this store, oldest first."""
        rows = self._conn.execute("SELECT command FROM grids WHERE command != '' ORDER BY id")
        return list(dict.fromkeys(row[0] for row in rows))

    def grids(self) -> list[GridConfig]:
        """Every grid run into this store, oldest first."""
        rows = self._conn.execute("SELECT config FROM grids ORDER BY id").fetchall()
        return [GridConfig.from_dict(json.loads(row[0]), source=str(self.path)) for row in rows]

    def register_unit(self, unit: Unit, options: dict[str, Any]) -> None:
        """Record the options of ``unit``; refuse options that differ from stored ones.

        Raises:
            ConfigError: see :meth:`check_unit`.
        """
        if self.check_unit(unit, options):
            return
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO units VALUES (?, ?, ?, ?, ?, ?)",
                         (unit.dataset, unit.strategy, unit.budget, unit.seed,
                          json.dumps(options, sort_keys=True), time.time()))

    def check_unit(self, unit: Unit, options: dict[str, Any]) -> bool:
        """Whether ``unit`` is registered (with the same options).

        Raises:
            ConfigError: the unit exists with different options (other than data path and
                device), which would mix two protocols in one table.
        """
        stored = self.unit_options(unit)
        if stored is None:
            return False
        # an option added to medactive later, at its empty default, changes nothing
        diffs = [f"{k}: {stored.get(k)!r} -> {options.get(k)!r}"
                 for k in sorted(set(stored) | set(options))
                 if k not in VOLATILE_OPTIONS and stored.get(k) != options.get(k)
                 and not (k not in stored and not options.get(k))
                 and not (k == "encoder" and _same_grid_encoder(stored[k], options.get(k)))]
        if diffs:
            raise ConfigError(f"{self.path}: unit {unit.key} was run with other options "
                              f"({'; '.join(diffs)}); use another --out folder")
        return True

    def unit_options(self, unit: Unit) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT options FROM units WHERE dataset=? AND strategy=? AND budget=? AND seed=?",
            (unit.dataset, unit.strategy, unit.budget, unit.seed)).fetchone()
        return None if row is None else json.loads(row[0])

    def add_attempt(self, unit: Unit | SupervisedUnit, from_round: int,
                    describe: dict[str, Any], host: str | None = None) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT INTO attempts (unit, from_round, describe, host, started_at) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (unit.key, from_round, json.dumps(describe, default=str),
                          host or socket.gethostname(), time.time()))

    def attempts(self) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT unit, from_round, describe, host, started_at FROM attempts ORDER BY id")
        return [{"unit": u, "from_round": r, "describe": json.loads(d), "host": h,
                 "started_at": t} for u, r, d, h, t in rows]

    def add_failure(self, unit: Unit | SupervisedUnit, message: str) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT INTO failures (unit, message, at) VALUES (?, ?, ?)",
                         (unit.key, message, time.time()))

    def failures(self) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT unit, message, at FROM failures ORDER BY id")
        return [{"unit": u, "message": m, "at": t} for u, m, t in rows]

    # -- rounds ----------------------------------------------------------------------------
    def add_round(self, unit: Unit, row: dict[str, Any]) -> bool:
        """Insert one finished round (a dict from :func:`record_to_row`).

        Returns:
            ``True`` if inserted, ``False`` if the round was already stored (the stored row is
            kept; a warning is logged if it differs).
        """
        values = [unit.dataset, unit.strategy, unit.budget, unit.seed, int(row["round"]),
                  int(row["n_labeled"]), _dumps(row["metrics"]),
                  _dumps(row["added_idx"]), _dumps(row["added_ids"]),
                  _dumps(row["added_scores"]), _dumps(row["queried_idx"]),
                  _dumps(row["queried_ids"]), _dumps(row["queried_scores"]),
                  float(row["seconds"]), float(row["query_seconds"]), time.time()]
        columns = list(_ROUND_COLUMNS)
        if any(row.get(c) for c in PSEUDO_COLUMNS):
            self._add_pseudo_columns()
            columns += PSEUDO_COLUMNS
            values += [_dumps(list(row.get(c) or [])) for c in PSEUDO_COLUMNS]
        sql = (f"INSERT INTO rounds ({', '.join(columns)}) VALUES "
               f"({', '.join('?' * len(columns))})")
        try:
            with self._transaction() as conn:
                conn.execute(sql, values)
        except sqlite3.IntegrityError:
            stored = self.rounds(unit=unit, round=int(row["round"]))
            if stored and (stored[0]["metrics"] != _loads(_dumps(row["metrics"]))
                           or stored[0]["queried_ids"] != list(row["queried_ids"])):
                logger.warning("%s round %s is already stored with other results; keeping the "
                               "stored row", unit.key, row["round"])
            return False
        return True

    def _add_pseudo_columns(self) -> None:
        """Add the nullable ``pseudo_*`` columns to ``rounds`` where missing (older stores)."""
        have = {r[1] for r in self._conn.execute("PRAGMA table_info(rounds)")}
        missing = [c for c in PSEUDO_COLUMNS if c not in have]
        if missing:
            with self._transaction() as conn:
                for column in missing:
                    conn.execute(f"ALTER TABLE rounds ADD COLUMN {column} TEXT")

    def completed_rounds(self, unit: Unit) -> list[RoundRecord]:
        """The stored rounds of ``unit`` as loop records, for resuming (``completed=``).

        Raises:
            DataError: a gap in the stored rounds (round ``k`` stored without ``k - 1``).
        """
        rows = self.rounds(unit=unit)
        for expected, row in enumerate(rows):
            if row["round"] != expected:
                raise DataError(f"{self.path}: unit {unit.key} has round {row['round']} stored "
                                f"but not round {expected}")
        return [row_to_record(row) for row in rows]

    def rounds(self, *, unit: Unit | None = None, dataset: str | None = None,
               round: int | None = None) -> list[dict[str, Any]]:
        """Stored round rows as dicts (JSON columns decoded), ordered by unit and round."""
        where, args = [], []
        if unit is not None:
            where.append("dataset=? AND strategy=? AND budget=? AND seed=?")
            args += [unit.dataset, unit.strategy, unit.budget, unit.seed]
        if dataset is not None:
            where.append("dataset=?")
            args.append(dataset)
        if round is not None:
            where.append("round=?")
            args.append(round)
        sql = "SELECT * FROM rounds"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY dataset, strategy, budget, seed, round"
        cursor = self._conn.execute(sql, args)
        names = [d[0] for d in cursor.description]
        out = []
        for values in cursor:
            row = dict(zip(names, values))
            for key in _JSON_COLUMNS:
                if key in row:  # pseudo columns: absent in older stores, NULL in plain rounds
                    row[key] = [] if row[key] is None else _loads(row[key])
            out.append(row)
        return out

    def n_rounds(self) -> dict[tuple[str, str, int, int], int]:
        """``(dataset, strategy, budget, seed) -> number of stored rounds``."""
        rows = self._conn.execute("SELECT dataset, strategy, budget, seed, COUNT(*) FROM rounds "
                                  "GROUP BY dataset, strategy, budget, seed")
        return {(d, s, b, e): n for d, s, b, e, n in rows}

    # -- fully supervised reference --------------------------------------------------------
    def add_supervised(self, unit: SupervisedUnit, *, metrics: dict[str, float], n_labeled: int,
                       options: dict[str, Any], seconds: float) -> bool:
        """Store a reference run (table ``converged`` for a converged unit); ``False`` if it
        was stored already."""
        try:
            with self._transaction() as conn:
                conn.execute(f"INSERT INTO {_reference_table(unit.converged)} "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (unit.dataset, unit.seed, int(n_labeled), _dumps(metrics),
                              json.dumps(options, sort_keys=True), float(seconds), time.time()))
        except sqlite3.IntegrityError:
            return False
        return True

    def supervised(self, dataset: str | None = None, *, converged: bool = False
                   ) -> list[dict[str, Any]]:
        """Reference rows: budget-matched, or with ``converged`` the converged ones."""
        sql = ("SELECT dataset, seed, n_labeled, metrics, seconds FROM "
               + _reference_table(converged))
        args: list[Any] = []
        if dataset is not None:
            sql += " WHERE dataset=?"
            args.append(dataset)
        rows = self._conn.execute(sql + " ORDER BY dataset, seed", args)
        return [{"dataset": d, "seed": s, "n_labeled": n, "metrics": _loads(m), "seconds": t}
                for d, s, n, m, t in rows]

    def has_supervised(self, unit: SupervisedUnit) -> bool:
        return self._conn.execute(
            f"SELECT 1 FROM {_reference_table(unit.converged)} WHERE dataset=? AND seed=?",
            (unit.dataset, unit.seed)).fetchone() is not None


def _reference_table(converged: bool) -> str:
    return "converged" if converged else "supervised"


# -- conversions between loop records and rows -------------------------------------------------
def record_to_row(record: RoundRecord, pool_ids: Sequence[str] | np.ndarray) -> dict[str, Any]:
    """A plain, picklable, JSON-able dict of ``record`` with sample ids from ``pool_ids``."""
    pool_ids = np.asarray(pool_ids)
    added = np.asarray(record.added_idx, dtype=np.int64)
    queried = np.asarray(record.queried_idx, dtype=np.int64)
    pseudo = np.asarray(record.pseudo_idx, dtype=np.int64)
    next_pseudo = np.asarray(record.next_pseudo_idx, dtype=np.int64)
    return {
        "round": int(record.round), "n_labeled": int(record.n_labeled),
        "metrics": {str(k): _float(v) for k, v in record.metrics.items()},
        "added_idx": added.tolist(), "added_ids": [str(s) for s in pool_ids[added]],
        "added_scores": [_float(s) for s in np.asarray(record.added_scores).ravel()],
        "queried_idx": queried.tolist(), "queried_ids": [str(s) for s in pool_ids[queried]],
        "queried_scores": [_float(s) for s in np.asarray(record.queried_scores).ravel()],
        "seconds": float(record.seconds), "query_seconds": float(record.query_seconds),
        "pseudo_idx": pseudo.tolist(), "pseudo_ids": [str(s) for s in pool_ids[pseudo]],
        "pseudo_labels": np.asarray(record.pseudo_labels, dtype=np.int64).tolist(),
        "next_pseudo_idx": next_pseudo.tolist(),
        "next_pseudo_ids": [str(s) for s in pool_ids[next_pseudo]],
        "next_pseudo_labels": np.asarray(record.next_pseudo_labels, dtype=np.int64).tolist(),
    }


def row_to_record(row: dict[str, Any]) -> RoundRecord:
    """The :class:`RoundRecord` of a stored row (``None`` scores become NaN)."""
    def scores(values: list) -> np.ndarray:
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)

    return RoundRecord(
        round=int(row["round"]), n_labeled=int(row["n_labeled"]),
        metrics={k: (math.nan if v is None else float(v)) for k, v in row["metrics"].items()},
        added_idx=np.asarray(row["added_idx"], dtype=np.int64),
        added_scores=scores(row["added_scores"]),
        queried_idx=np.asarray(row["queried_idx"], dtype=np.int64),
        queried_scores=scores(row["queried_scores"]),
        seconds=float(row["seconds"]), query_seconds=float(row["query_seconds"]),
        pseudo_idx=np.asarray(row.get("pseudo_idx") or [], dtype=np.int64),
        pseudo_labels=np.asarray(row.get("pseudo_labels") or [], dtype=np.int64),
        next_pseudo_idx=np.asarray(row.get("next_pseudo_idx") or [], dtype=np.int64),
        next_pseudo_labels=np.asarray(row.get("next_pseudo_labels") or [], dtype=np.int64))


def _float(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False)


def _loads(text: str) -> Any:
    return json.loads(text)
