"""The project store: one SQLite database (WAL mode) holding everything a labelling project knows.

A project directory holds ``project.db`` and the files the project writes itself (model
checkpoints, uploaded masks). Images are referenced by path relative to the image folder, with a
content hash, never copied or modified.

Tables:

- ``meta``: key/value settings (task, classes, image folder, seed, preset, ...), JSON values.
- ``samples``: ``id`` (path relative to the image folder without extension, or
  ``<volume>/slice_<k>`` for a slice of a volume, ``<slice id>@<row>,<col>`` for a patch of a
  region project), ``path``, ``frame`` (slice index or NULL),
  ``sha256`` of the file, ``split`` (``pool`` = the active-learning pool, ``val``, ``test``).
- ``labels``: append-only history; a sample's label is its latest row. ``value`` is a class index
  (classification) or ``mask_path`` a mask file inside the project (segmentation); ``annotator``,
  ``created_at``, ``round`` (the labeled set ``L_round`` the sample joins) and ``source``
  (``expert`` = web page, ``import``, ``initial`` = given at ``init``); ``provenance`` (added in
  schema version 2, NULL in older rows and for imports): for a page label, ``accepted`` (the
  model's proposal saved unchanged), ``edited`` (a proposal was shown and the expert gave
  another class or changed the mask) or ``scratch`` (no proposal); ``active_ms``, ``edits``,
  ``pixels`` (schema 5, NULL = not measured): a page label's active time on screen, and for a
  mask the strokes and clears and its non-background pixels (:mod:`medactive.project.cost`).
- ``corrections``: which label row (``seq``) replaced which (``replaces``), by whom and when: a
  label given on the page changes only by such an explicit correction of its own annotator
  (:meth:`ProjectStore.label_as_holder`).
- ``rounds`` and ``queries``: each ``project query`` stores one batch: round ``k``'s batch forms
  ``L_k`` (round 0: the random initial set), with each sample's rank, score and status
  (``pending``, ``labelled``, ``skipped``) and a lease (annotator + expiry) so that two
  annotators never hold the same pending image.
- ``models``: one row per trained model (round, checkpoint path, metrics, digest of the labels).
- ``annotators``: name and the SHA-256 of their login token (the token itself is never stored);
  ``adjudicator`` (schema 4): 1 for an annotator whose page offers the disagreements of double
  reading.
- ``reader_leases`` (schema 4, projects of ``--readers K > 1``): one lease per (batch item,
  reader), and whether that reader skipped it (:mod:`medactive.project.readings`).
- ``adjudications`` (schema 4): append-only decisions on disagreements of double reading: the
  chosen class (``value``) or mask (``mask_path``), ``adjudicator``, ``created_at``, ``round``
  and ``readings`` (JSON list of the label seqs decided between); the sample's latest decision
  is its training label, its readings stay in ``labels``. Schema 6 adds how it was made:
  ``method`` (``label``: a class named; ``reader``: ``reader``'s reading kept; ``edited``: a
  mask the adjudicator drew, starting from ``reader``'s mask, or from the vote when NULL);
  NULL in decisions made before.
- ``excluded``: samples left out of the project (``project exclude``: an unreadable or unwanted
  image), with who, when and why. An excluded sample keeps its ``samples`` row, its labels and
  its batch items, but leaves the pool, the evaluation sets, queries, training and exports
  (:meth:`ProjectStore.samples` and :meth:`ProjectStore.pool_ids` skip it).

Safety: every write is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), so a process killed
at any point leaves either the whole write or none of it; WAL mode with ``synchronous=FULL``
keeps committed transactions across crashes and lets the web server read while a command writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medactive.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

DB_NAME = "project.db"
SOURCES = ("expert", "import", "initial")
STATUSES = ("pending", "labelled", "skipped")
SPLITS = ("pool", "val", "test")
PROVENANCES = ("accepted", "edited", "scratch")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    frame INTEGER,
    sha256 TEXT NOT NULL,
    split TEXT NOT NULL DEFAULT 'pool' CHECK (split IN ('pool', 'val', 'test'))
);
CREATE TABLE IF NOT EXISTS labels (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id TEXT NOT NULL REFERENCES samples(id),
    value INTEGER,
    mask_path TEXT,
    annotator TEXT NOT NULL,
    created_at TEXT NOT NULL,
    round INTEGER NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('expert', 'import', 'initial')),
    provenance TEXT CHECK (provenance IN ('accepted', 'edited', 'scratch')),
    active_ms INTEGER CHECK (active_ms >= 0),
    edits INTEGER CHECK (edits >= 0),
    pixels INTEGER CHECK (pixels >= 0),
    CHECK ((value IS NULL) <> (mask_path IS NULL))
);
CREATE INDEX IF NOT EXISTS labels_sample ON labels(sample_id, seq);
CREATE TABLE IF NOT EXISTS corrections (
    seq INTEGER PRIMARY KEY REFERENCES labels(seq),
    replaces INTEGER NOT NULL REFERENCES labels(seq),
    annotator TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    strategy TEXT NOT NULL,
    budget INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS queries (
    round INTEGER NOT NULL REFERENCES rounds(round),
    sample_id TEXT NOT NULL REFERENCES samples(id),
    rank INTEGER NOT NULL,
    score REAL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'labelled', 'skipped')),
    lease_annotator TEXT,
    lease_expires REAL,
    PRIMARY KEY (round, sample_id)
);
CREATE INDEX IF NOT EXISTS queries_status ON queries(status, round, rank);
CREATE TABLE IF NOT EXISTS models (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    round INTEGER NOT NULL,
    checkpoint TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    n_labeled INTEGER NOT NULL,
    labels_digest TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS annotators (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    adjudicator INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS reader_leases (
    round INTEGER NOT NULL,
    sample_id TEXT NOT NULL REFERENCES samples(id),
    annotator TEXT NOT NULL,
    lease_expires REAL,
    skipped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (round, sample_id, annotator),
    FOREIGN KEY (round, sample_id) REFERENCES queries(round, sample_id)
);
CREATE TABLE IF NOT EXISTS adjudications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id TEXT NOT NULL REFERENCES samples(id),
    value INTEGER,
    mask_path TEXT,
    adjudicator TEXT NOT NULL,
    created_at TEXT NOT NULL,
    round INTEGER NOT NULL,
    readings TEXT NOT NULL DEFAULT '[]',
    method TEXT CHECK (method IN ('label', 'reader', 'edited')),
    reader TEXT,
    CHECK ((value IS NULL) <> (mask_path IS NULL))
);
CREATE TABLE IF NOT EXISTS excluded (
    sample_id TEXT PRIMARY KEY REFERENCES samples(id),
    reason TEXT NOT NULL DEFAULT '',
    excluded_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""


#: What each schema version added to an older store, as ``(version, table, column definition)``
#: (the column is also in ``_SCHEMA`` for new stores; ``None``: the version only added tables,
#: which ``_SCHEMA``'s ``CREATE TABLE IF NOT EXISTS`` makes). Only nullable or defaulted columns
#: are ever added, so every existing row keeps every value.
_MIGRATIONS: tuple[tuple[int, str, str | None], ...] = (
    (2, "labels", "provenance TEXT CHECK (provenance IN ('accepted', 'edited', 'scratch'))"),
    # double reading (project/readings.py): adjudicators; the tables reader_leases, adjudications
    (4, "annotators", "adjudicator INTEGER NOT NULL DEFAULT 0"),
    (4, "reader_leases", None),
    (4, "adjudications", None),
    # measured annotation cost (project/cost.py); 5, not 3: stores of schema 4 must gain them
    (5, "labels", "active_ms INTEGER CHECK (active_ms >= 0)"),
    (5, "labels", "edits INTEGER CHECK (edits >= 0)"),
    (5, "labels", "pixels INTEGER CHECK (pixels >= 0)"),
    # how an adjudication was made (project/adjudication.py); NULL in older rows
    (6, "adjudications", "method TEXT CHECK (method IN ('label', 'reader', 'edited'))"),
    (6, "adjudications", "reader TEXT"),
)
SCHEMA_VERSION = max(version for version, _, _ in _MIGRATIONS)


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string (seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def file_sha256(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def token_sha256(token: str) -> str:
    """The stored form of a login token (tokens are random, so a plain hash is enough)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Sample:
    """One row of ``samples``. ``key`` is the opaque integer used in URLs."""

    key: int
    id: str
    path: str
    frame: int | None
    sha256: str
    split: str


@dataclass(frozen=True)
class Label:
    """One row of ``labels`` (a sample's current label is its latest row)."""

    seq: int
    sample_id: str
    value: int | None
    mask_path: str | None
    annotator: str
    created_at: str
    round: int
    source: str
    provenance: str | None = None
    active_ms: int | None = None  # measured cost (schema 5, medactive.project.cost); NULL:
    edits: int | None = None      # not measured (imports, initial labels, older rows)
    pixels: int | None = None


@dataclass(frozen=True)
class QueryItem:
    """One sample of a queried batch."""

    round: int
    sample_id: str
    rank: int
    score: float | None
    status: str
    lease_annotator: str | None
    lease_expires: float | None


@dataclass(frozen=True)
class LabelWrite:
    """What :meth:`ProjectStore.label_as_holder` did.

    ``outcome`` is ``written`` (a first label or a correction), ``same`` (the label already is
    that; nothing written) or a refusal, nothing written: ``held`` (another annotator's lease:
    ``holder`` until ``holder_until``), ``not_leased`` (the item is not leased to this
    annotator), ``closed`` (not an open item of a batch), ``labelled`` (it has a label and the
    write is no correction of it), ``stale`` (the correction names a label that is no longer
    current) or ``not_owner`` (the current label is another annotator's). ``current`` is the
    sample's label after the call.
    """

    outcome: str
    current: Label | None
    holder: str | None = None
    holder_until: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("written", "same")


@dataclass(frozen=True)
class NewLabel:
    """A label to write: ``value`` (class index) or ``mask_path`` (relative to the project)."""

    sample_id: str
    value: int | None = None
    mask_path: str | None = None
    provenance: str | None = None  # one of PROVENANCES (page labels), else None
    active_ms: int | None = None  # page labels: active time on screen (medactive.project.cost)
    edits: int | None = None  # masks: strokes and clears
    pixels: int | None = None  # masks: non-background pixels of the saved mask


class ProjectStore:
    """Access to a project's database.

    Each thread gets its own connection (the web server answers requests from a thread pool).
    Reads see the last committed state; writes go through :meth:`transaction`.

    Args:
        directory: the project directory (holding ``project.db``).
        create: create the database (and directory) if missing; otherwise a missing project
            is a :class:`~medactive.errors.ConfigError`.
    """

    def __init__(self, directory: str | Path, *, create: bool = False) -> None:
        self.directory = Path(directory)
        self.db_path = self.directory / DB_NAME
        if not self.db_path.is_file():
            if not create:
                raise ConfigError(f"{self.directory}: not a medactive project (no {DB_NAME}); "
                                  "create one with `medactive project init`")
            self.directory.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._conn()
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning("%s: could not switch to WAL mode (got %s)", self.db_path, mode)
        conn.executescript(_SCHEMA)
        version = self.get_meta("schema_version")
        if version is not None and version < SCHEMA_VERSION:
            self._migrate()
        if version is None:
            with self.transaction() as tx:
                tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                           (json.dumps(SCHEMA_VERSION),))
        elif version > SCHEMA_VERSION:
            raise ConfigError(f"{self.db_path}: schema version {version} is newer than this "
                              f"medactive ({SCHEMA_VERSION}); upgrade medactive")

    def _migrate(self) -> None:
        """Bring an older store to :data:`SCHEMA_VERSION` in one transaction, only adding the
        columns of :data:`_MIGRATIONS` it lacks (version 1 -> 2: the nullable
        ``labels.provenance``, NULL in existing rows)."""
        with self.transaction() as tx:
            for _, table, column in _MIGRATIONS:
                if column is None:
                    continue
                present = {r[1] for r in tx.execute(f"PRAGMA table_info({table})")}
                if column.split()[0] not in present:
                    tx.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            tx.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                       (json.dumps(SCHEMA_VERSION),))

    # -- connections and transactions -------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back if the block raises."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query and return all rows."""
        return self._conn().execute(sql, params).fetchall()

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check`` (``"ok"`` for a sound database)."""
        return str(self._conn().execute("PRAGMA integrity_check").fetchone()[0])

    # -- meta ---------------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.execute("SELECT * FROM meta")}

    def set_meta(self, values: dict[str, Any], *, tx: sqlite3.Connection | None = None) -> None:
        rows = [(k, json.dumps(v)) for k, v in values.items()]
        if tx is not None:
            tx.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", rows)
            return
        with self.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", rows)

    @property
    def task(self) -> str:
        return str(self.get_meta("task", "classification"))

    @property
    def classes(self) -> list[str]:
        return list(self.get_meta("classes", []))

    @property
    def images_root(self) -> Path:
        return Path(self.get_meta("images_root"))

    # -- samples ------------------------------------------------------------------------------
    def add_samples(self, rows: Iterable[tuple[str, str, int | None, str, str]], *,
                    tx: sqlite3.Connection) -> None:
        """Insert ``(id, path, frame, sha256, split)`` rows inside transaction ``tx``."""
        tx.executemany("INSERT INTO samples(id, path, frame, sha256, split) VALUES (?,?,?,?,?)",
                       list(rows))

    def samples(self, split: str | None = None, *, excluded: bool = False) -> list[Sample]:
        """Samples in the order they were found at init (``split=None``: all splits), without
        the excluded ones unless ``excluded``."""
        where = [] if excluded else ["id NOT IN (SELECT sample_id FROM excluded)"]
        params: tuple = ()
        if split is not None:
            where.append("split = ?")
            params = (split,)
        sql = "SELECT * FROM samples" + (" WHERE " + " AND ".join(where) if where else "")
        return [Sample(**dict(r)) for r in self.execute(sql + " ORDER BY key", params)]

    def pool_ids(self) -> list[str]:
        """The active-learning pool in pool order; pool index = position.

        Pool order is the order in which init found the samples, the order ``medactive run``
        reads the same folder in: image files as :func:`~medactive.data.images.find_images`
        lists them; volumes in natural order of their names, then slices ``0..S-1`` (so
        ``case2/9`` comes before ``case2/10``).
        """
        return [r[0] for r in self.execute(
            "SELECT id FROM samples WHERE split = 'pool' AND id NOT IN "
            "(SELECT sample_id FROM excluded) ORDER BY key")]

    def excluded(self) -> list[dict[str, Any]]:
        """Excluded samples ``{"sample_id", "reason", "excluded_by", "created_at"}`` in the
        order they were excluded."""
        return [dict(r) for r in self.execute("SELECT * FROM excluded ORDER BY rowid")]

    def excluded_ids(self) -> set[str]:
        return {r[0] for r in self.execute("SELECT sample_id FROM excluded")}

    def sample(self, sample_id: str) -> Sample | None:
        rows = self.execute("SELECT * FROM samples WHERE id = ?", (sample_id,))
        return Sample(**dict(rows[0])) if rows else None

    def sample_by_key(self, key: int) -> Sample | None:
        rows = self.execute("SELECT * FROM samples WHERE key = ?", (int(key),))
        return Sample(**dict(rows[0])) if rows else None

    def sample_path(self, sample: Sample) -> Path:
        """Absolute path of a sample's file (stored paths are relative to the image folder)."""
        return self.images_root / sample.path

    # -- labels -------------------------------------------------------------------------------
    def current_round(self) -> int:
        """The round of the latest batch, or -1 before the first query."""
        row = self._conn().execute("SELECT MAX(round) FROM rounds").fetchone()
        return -1 if row[0] is None else int(row[0])

    def current_labels(self, split: str | None = None) -> dict[str, Label]:
        """Each labelled sample's latest label, by sample id."""
        sql = ("SELECT l.* FROM labels l JOIN (SELECT sample_id, MAX(seq) AS seq FROM labels "
               "GROUP BY sample_id) m ON l.seq = m.seq")
        params: tuple = ()
        if split is not None:
            sql += " JOIN samples s ON s.id = l.sample_id WHERE s.split = ?"
            params = (split,)
        return {r["sample_id"]: Label(**dict(r)) for r in self.execute(sql, params)}

    def current_labels_for(self, sample_ids: Sequence[str]) -> dict[str, Label]:
        """The current labels of the given samples (those that have one)."""
        out: dict[str, Label] = {}
        for sid in sample_ids:
            rows = self.execute("SELECT * FROM labels WHERE sample_id = ? ORDER BY seq DESC "
                                "LIMIT 1", (sid,))
            if rows:
                out[sid] = Label(**dict(rows[0]))
        return out

    def label_as_holder(self, label: NewLabel, *, annotator: str,
                        replaces: int | None = None) -> LabelWrite:
        """Write a label from the page: a check-and-set in one ``BEGIN IMMEDIATE`` transaction.

        A sample without a label is labelled only by the annotator its batch item is leased to
        (their lease, even if it ran out, as long as nobody else took it). A sample with a label
        changes only by a correction: ``replaces`` names the ``seq`` of the current label, and
        only that label's own annotator may correct it (there is no adjudicator role yet); the
        correction is recorded in ``corrections``. Of two concurrent writes the second sees the
        first one's result and is refused (``labelled`` or ``stale``).

        Returns:
            A :class:`LabelWrite`; nothing is written unless its ``outcome`` is ``written``.
        """
        with self.transaction() as tx:
            row = tx.execute("SELECT * FROM labels WHERE sample_id = ? ORDER BY seq DESC "
                             "LIMIT 1", (label.sample_id,)).fetchone()
            current = None if row is None else Label(**dict(row))
            same = current is not None and (current.value, current.mask_path) == (
                label.value, label.mask_path) and current.annotator == annotator
            if current is None:
                if replaces is not None:
                    return LabelWrite("stale", None)
                item = tx.execute("SELECT status, lease_annotator, lease_expires FROM queries "
                                  "WHERE sample_id = ? ORDER BY round DESC LIMIT 1",
                                  (label.sample_id,)).fetchone()
                if item is None or item["status"] == "labelled":
                    return LabelWrite("closed", None)
                holder, until = item["lease_annotator"], item["lease_expires"]
                if holder != annotator:
                    if holder is not None and until is not None and until > time.time():
                        return LabelWrite("held", None, holder, until)
                    return LabelWrite("not_leased", None)
            elif same and replaces in (None, current.seq):
                return LabelWrite("same", current)
            elif replaces is None:
                return LabelWrite("labelled", current)
            elif replaces != current.seq:
                return LabelWrite("stale", current)
            elif current.annotator != annotator:
                return LabelWrite("not_owner", current)
            self.write_labels([label], annotator=annotator, source="expert", tx=tx)
            seq = int(tx.execute("SELECT last_insert_rowid()").fetchone()[0])
            if current is not None:
                tx.execute("INSERT INTO corrections(seq, replaces, annotator, created_at) "
                           "VALUES (?,?,?,?)", (seq, current.seq, annotator, now_iso()))
            new = Label(**dict(tx.execute("SELECT * FROM labels WHERE seq = ?",
                                          (seq,)).fetchone()))
        return LabelWrite("written", new)

    def corrections(self, sample_id: str) -> list[dict[str, Any]]:
        """The corrections of ``sample_id``'s labels, oldest first: ``{"seq", "replaces",
        "annotator", "created_at"}`` (``seq`` the new label row, ``replaces`` the old one)."""
        return [dict(r) for r in self.execute(
            "SELECT c.* FROM corrections c JOIN labels l ON l.seq = c.seq "
            "WHERE l.sample_id = ? ORDER BY c.seq", (sample_id,))]

    def label_history(self, sample_id: str) -> list[Label]:
        rows = self.execute("SELECT * FROM labels WHERE sample_id = ? ORDER BY seq", (sample_id,))
        return [Label(**dict(r)) for r in rows]

    def first_label_rounds(self) -> dict[str, tuple[int, int]]:
        """``{sample_id: (round, seq)}`` of each sample's first label: when it joined ``L``."""
        rows = self.execute("SELECT sample_id, round, MIN(seq) AS seq FROM labels "
                            "GROUP BY sample_id")
        return {r["sample_id"]: (int(r["round"]), int(r["seq"])) for r in rows}

    def write_labels(self, labels: Sequence[NewLabel], *, annotator: str, source: str,
                     tx: sqlite3.Connection, row_hook=None) -> int:
        """Append labels inside transaction ``tx`` and mark their pending queries labelled.

        ``round`` is the current round (at least 0): the labeled set the sample joins if it is
        new. ``row_hook(i)`` is called after each row (used by tests to kill mid-import).

        Returns:
            The number of rows written.
        """
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        row = tx.execute("SELECT MAX(round) FROM rounds").fetchone()
        rnd = max(0, -1 if row[0] is None else int(row[0]))
        stamp = now_iso()
        for i, lab in enumerate(labels):
            tx.execute("INSERT INTO labels(sample_id, value, mask_path, annotator, created_at, "
                       "round, source, provenance, active_ms, edits, pixels) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (lab.sample_id, lab.value, lab.mask_path, annotator, stamp, rnd, source,
                        lab.provenance, lab.active_ms, lab.edits, lab.pixels))
            tx.execute("UPDATE queries SET status = 'labelled', lease_annotator = NULL, "
                       "lease_expires = NULL WHERE sample_id = ? AND status != 'labelled'",
                       (lab.sample_id,))
            if row_hook is not None:
                row_hook(i)
        return len(labels)

    def add_label(self, label: NewLabel, *, annotator: str, source: str = "expert") -> None:
        """Write one label in its own transaction."""
        with self.transaction() as tx:
            self.write_labels([label], annotator=annotator, source=source, tx=tx)

    # -- rounds and queries -------------------------------------------------------------------
    def add_batch(self, rnd: int, strategy: str, sample_ids: Sequence[str],
                  scores: Sequence[float | None], *, budget: int, options: dict | None = None,
                  tx: sqlite3.Connection) -> None:
        """Store round ``rnd``'s batch as pending (ranks in the given order) inside ``tx``."""
        tx.execute("INSERT INTO rounds(round, strategy, budget, created_at, options) "
                   "VALUES (?,?,?,?,?)",
                   (rnd, strategy, int(budget), now_iso(), json.dumps(options or {})))
        tx.executemany(
            "INSERT INTO queries(round, sample_id, rank, score, status) VALUES (?,?,?,?,?)",
            [(rnd, sid, i, None if s is None or math.isnan(s) else float(s), "pending")
             for i, (sid, s) in enumerate(zip(sample_ids, scores, strict=True))])

    def rounds(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.execute("SELECT * FROM rounds ORDER BY round")]

    def batch(self, rnd: int) -> list[QueryItem]:
        """Round ``rnd``'s batch in rank order."""
        rows = self.execute("SELECT round, sample_id, rank, score, status, lease_annotator, "
                            "lease_expires FROM queries WHERE round = ? ORDER BY rank", (rnd,))
        return [QueryItem(**dict(r)) for r in rows]

    def queries(self, status: str | None = None) -> list[QueryItem]:
        """All batch items (optionally of one status) by round and rank."""
        sql = ("SELECT round, sample_id, rank, score, status, lease_annotator, lease_expires "
               "FROM queries")
        params: tuple = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (status,)
        return [QueryItem(**dict(r)) for r in self.execute(sql + " ORDER BY round, rank", params)]

    def set_status(self, sample_id: str, status: str, *, annotator: str | None = None) -> bool:
        """Set the status of ``sample_id``'s open batch item (e.g. ``skipped``) in one
        transaction and release its lease. Returns False if there is no open item, or if another
        annotator holds it."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        with self.transaction() as tx:
            if annotator is not None and self._held_by_other(tx, sample_id, annotator):
                return False
            cur = tx.execute("UPDATE queries SET status = ?, lease_annotator = NULL, "
                             "lease_expires = NULL WHERE sample_id = ? AND status != 'labelled'",
                             (status, sample_id))
            return cur.rowcount > 0

    # -- leases ---------------------------------------------------------------------------------
    @staticmethod
    def _held_by_other(tx: sqlite3.Connection, sample_id: str, annotator: str) -> bool:
        row = tx.execute("SELECT 1 FROM queries WHERE sample_id = ? AND status != 'labelled' "
                         "AND lease_annotator IS NOT NULL AND lease_annotator != ? "
                         "AND lease_expires > ?", (sample_id, annotator, time.time())).fetchone()
        return row is not None

    def held_by_other(self, sample_id: str, annotator: str) -> bool:
        """Whether another annotator holds an unexpired lease on ``sample_id``."""
        return self._held_by_other(self._conn(), sample_id, annotator)

    def lease_next(self, annotator: str, *, seconds: float,
                   statuses: Sequence[str] = ("pending",)) -> QueryItem | None:
        """Lease the next open item to ``annotator`` (one transaction).

        An annotator holds at most one lease: if they already hold an unexpired lease on an
        item with a status in ``statuses`` it is renewed and returned. Otherwise the first item
        (by round, rank) with a status in ``statuses`` and no unexpired lease of someone else is
        leased (and any other lease of theirs given up). Returns None when nothing is free:
        :meth:`held_by_others` tells whether items are still held.
        """
        now = time.time()
        marks = ",".join("?" * len(statuses))
        with self.transaction() as tx:
            row = tx.execute(
                "SELECT round, sample_id FROM queries WHERE lease_annotator = ? AND "
                f"lease_expires > ? AND status IN ({marks}) ORDER BY round, rank LIMIT 1",
                (annotator, now, *statuses)).fetchone()
            if row is None:
                row = tx.execute(
                    f"SELECT round, sample_id FROM queries WHERE status IN ({marks}) AND "
                    "(lease_annotator IS NULL OR lease_expires <= ? OR lease_annotator = ?) "
                    "AND sample_id NOT IN (SELECT sample_id FROM excluded) "
                    "ORDER BY round, rank LIMIT 1", (*statuses, now, annotator)).fetchone()
            if row is None:
                return None
            tx.execute("UPDATE queries SET lease_annotator = NULL, lease_expires = NULL "
                       "WHERE lease_annotator = ?", (annotator,))
            tx.execute("UPDATE queries SET lease_annotator = ?, lease_expires = ? "
                       "WHERE round = ? AND sample_id = ?",
                       (annotator, now + seconds, row["round"], row["sample_id"]))
            item = tx.execute(
                "SELECT round, sample_id, rank, score, status, lease_annotator, lease_expires "
                "FROM queries WHERE round = ? AND sample_id = ?",
                (row["round"], row["sample_id"])).fetchone()
        return QueryItem(**dict(item))

    def take_lease(self, sample_id: str, annotator: str, *,
                   seconds: float) -> tuple[bool, str | None, float | None]:
        """Lease ``sample_id``'s open batch item to ``annotator`` (going back to an image they
        skipped), giving up their other leases, unless another annotator holds it: one
        transaction.

        Returns:
            ``(taken, holder, until)``: ``taken`` False when the item is labelled or not in a
            batch (``holder`` None) or another annotator holds it (``holder`` until ``until``).
        """
        now = time.time()
        with self.transaction() as tx:
            row = tx.execute("SELECT round, status, lease_annotator, lease_expires FROM queries "
                             "WHERE sample_id = ? ORDER BY round DESC LIMIT 1",
                             (sample_id,)).fetchone()
            if row is None or row["status"] == "labelled" or tx.execute(
                    "SELECT 1 FROM excluded WHERE sample_id = ?", (sample_id,)).fetchone():
                return False, None, None
            holder, until = row["lease_annotator"], row["lease_expires"]
            if holder not in (None, annotator) and until is not None and until > now:
                return False, holder, until
            tx.execute("UPDATE queries SET lease_annotator = NULL, lease_expires = NULL "
                       "WHERE lease_annotator = ?", (annotator,))
            tx.execute("UPDATE queries SET lease_annotator = ?, lease_expires = ? "
                       "WHERE round = ? AND sample_id = ?",
                       (annotator, now + seconds, row["round"], sample_id))
        return True, annotator, now + seconds

    def held_by_others(self, annotator: str, *,
                       statuses: Sequence[str] = ("pending",)) -> tuple[int, float | None]:
        """Items with a status in ``statuses`` under another annotator's unexpired lease:
        ``(how many, when the first of those leases runs out)`` (``(0, None)`` if none)."""
        marks = ",".join("?" * len(statuses))
        row = self._conn().execute(
            f"SELECT COUNT(*), MIN(lease_expires) FROM queries WHERE status IN ({marks}) AND "
            "lease_annotator IS NOT NULL AND lease_annotator != ? AND lease_expires > ? "
            "AND sample_id NOT IN (SELECT sample_id FROM excluded)",
            (*statuses, annotator, time.time())).fetchone()
        return int(row[0]), (None if row[1] is None else float(row[1]))

    def renew_lease(self, annotator: str, *, seconds: float) -> int:
        """Extend ``annotator``'s unexpired leases; returns how many."""
        now = time.time()
        with self.transaction() as tx:
            cur = tx.execute("UPDATE queries SET lease_expires = ? WHERE lease_annotator = ? "
                             "AND lease_expires > ? AND status != 'labelled'",
                             (now + seconds, annotator, now))
            return cur.rowcount

    def release_leases(self, annotator: str) -> int:
        """Give up all of ``annotator``'s leases (signing out); returns how many were
        unexpired."""
        with self.transaction() as tx:
            n = tx.execute("SELECT COUNT(*) FROM queries WHERE lease_annotator = ? AND "
                           "lease_expires > ? AND status != 'labelled'",
                           (annotator, time.time())).fetchone()[0]
            tx.execute("UPDATE queries SET lease_annotator = NULL, lease_expires = NULL "
                       "WHERE lease_annotator = ?", (annotator,))
        return int(n)

    # -- models ----------------------------------------------------------------------------------
    def add_model(self, rnd: int, checkpoint: str | None, metrics: dict[str, float], *,
                  n_labeled: int, labels_digest: str,
                  tx: sqlite3.Connection | None = None) -> None:
        row = (rnd, checkpoint, json.dumps(metrics), int(n_labeled), labels_digest, now_iso())
        sql = ("INSERT INTO models(round, checkpoint, metrics, n_labeled, labels_digest, "
               "created_at) VALUES (?,?,?,?,?,?)")
        if tx is not None:
            tx.execute(sql, row)
            return
        with self.transaction() as conn:
            conn.execute(sql, row)

    def models(self) -> list[dict[str, Any]]:
        rows = self.execute("SELECT * FROM models ORDER BY seq")
        return [{**dict(r), "metrics": json.loads(r["metrics"])} for r in rows]

    def find_model(self, labels_digest: str) -> dict[str, Any] | None:
        """The latest model trained on exactly the labels with ``labels_digest``."""
        rows = self.execute("SELECT * FROM models WHERE labels_digest = ? ORDER BY seq DESC "
                            "LIMIT 1", (labels_digest,))
        return {**dict(rows[0]), "metrics": json.loads(rows[0]["metrics"])} if rows else None

    # -- annotators ------------------------------------------------------------------------------
    def add_annotator(self, name: str) -> str:
        """Create annotator ``name`` (or give them a new token) and return the token to hand
        out; only its hash is stored."""
        name = name.strip()
        if not name or len(name) > 64 or any(c in name for c in "\r\n\t"):
            raise ConfigError(f"annotator name must be 1..64 printable characters, got {name!r}")
        token = secrets.token_urlsafe(24)
        with self.transaction() as tx:
            tx.execute("INSERT INTO annotators(name, token_sha256, created_at) VALUES (?,?,?) "
                       "ON CONFLICT(name) DO UPDATE SET token_sha256 = excluded.token_sha256",
                       (name, token_sha256(token), now_iso()))
        return token

    def annotator_for_token(self, token: str) -> str | None:
        """The annotator whose token this is, or None."""
        if not token:
            return None
        row = self._conn().execute("SELECT name FROM annotators WHERE token_sha256 = ?",
                                   (token_sha256(token),)).fetchone()
        return None if row is None else str(row[0])

    def annotators(self) -> list[str]:
        return [r[0] for r in self.execute("SELECT name FROM annotators ORDER BY name")]

    # -- summary ---------------------------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        """Counts for ``project status`` and the page's progress bar."""
        # excluded samples are counted apart: they are in no split any more
        by_split = {r[0]: r[1] for r in self.execute(
            "SELECT split, COUNT(*) FROM samples WHERE id NOT IN (SELECT sample_id FROM "
            "excluded) GROUP BY split")}
        labelled = {r[0]: r[1] for r in self.execute(
            "SELECT s.split, COUNT(DISTINCT l.sample_id) FROM labels l JOIN samples s "
            "ON s.id = l.sample_id WHERE s.id NOT IN (SELECT sample_id FROM excluded) "
            "GROUP BY s.split")}
        n_excluded = int(self.execute("SELECT COUNT(*) FROM excluded")[0][0])
        status = {r[0]: r[1] for r in self.execute(
            "SELECT status, COUNT(*) FROM queries GROUP BY status")}
        rnd = self.current_round()
        batch_status = {r[0]: r[1] for r in self.execute(
            "SELECT status, COUNT(*) FROM queries WHERE round = ? GROUP BY status", (rnd,))}
        return {
            "samples": {s: int(by_split.get(s, 0)) for s in SPLITS},
            "labelled": {s: int(labelled.get(s, 0)) for s in SPLITS},
            "queries": {s: int(status.get(s, 0)) for s in STATUSES},
            "round": rnd,
            "batch": {s: int(batch_status.get(s, 0)) for s in STATUSES},
            "excluded": n_excluded,
        }


def open_project(directory: str | Path) -> ProjectStore:
    """Open an existing project, with an error naming the directory when it is not one."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such project directory")
    return ProjectStore(directory)


def check_images_unchanged(store: ProjectStore, samples: Sequence[Sample]) -> None:
    """Raise :class:`DataError` when an image file is missing (hash checks are in status)."""
    for sample in samples:
        path = store.sample_path(sample)
        if not path.is_file():
            raise DataError(f"{path}: image of sample {sample.id!r} is missing (images are "
                            "referenced, not copied: restore the file or its folder)")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
