"""Double reading: each queried item read by ``K`` different annotators (``project init
--readers K``), and the training label made of their readings.

A *reading* is one annotator's label of a sample: the latest ``labels`` row of that annotator
with source ``expert`` (the page). Every row stays in the append-only history; a reader may
correct only their own reading (recorded in ``corrections`` as today).

Leases, one per reader (table ``reader_leases``): an item is offered to an annotator who has not
read it yet, has not skipped it, and while fewer than ``K`` readers have read it or hold an
unexpired lease on it; so nobody reads an item twice, and at most ``K`` people work on it at
once. A batch item's status becomes ``labelled`` when its ``K``-th reading is saved; until then
it stays ``pending`` (a reader's skip is their own: ``reader_leases.skipped``).

The training label of a sample (:func:`training_labels`), and the ``rule`` recorded with it:

1. ``adjudicated``: the latest decision of an adjudicator (``project adjudicate``, or the
   page of an annotator marked ``--adjudicator``), table ``adjudications``.
2. When the sample has its ``K`` readings: classes: ``unanimous`` (all agree) or
   ``majority`` (one class has more votes than any other); a tie (two readers who disagree,
   or 2-2 of four) is ``unresolved`` and not used for training until adjudicated: with no
   majority, any pick would be a coin flip written into the training set. Masks: ``unanimous``
   (identical masks) or ``vote``: the per-pixel majority vote, ties to the lowest class index
   (background first, so with two readers a pixel is foreground only where both marked it).
   Majority vote rather than STAPLE: with two or three readers STAPLE's per-reader
   sensitivity/specificity estimates rest on too few raters to be trusted, its result depends
   on a prior and a convergence threshold, and a vote is exact, reproducible by hand and needs
   no extra dependency. A mask pair below :data:`~medactive.project.agreement.MIN_MASK_DICE`
   is listed as a disagreement for an adjudicator; the vote is used until one decides.
3. Fewer than ``K`` readings: ``incomplete``, not used for training (the item returns to the
   pool when its batch is closed, and a later batch may offer it to the missing readers).
4. No reading: the latest label row (``initial``, ``import``): ``single``, as with one reader.

With ``K = 1`` (the default) nothing here changes anything: :class:`ReaderDesk` hands every call
to the store's own lease and label methods.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medactive.errors import ConfigError
from medactive.project.store import Label, LabelWrite, NewLabel, ProjectStore, QueryItem, now_iso

#: rules of :func:`training_labels`; those in USED give a training label
RULES = ("adjudicated", "unanimous", "majority", "vote", "single", "unresolved", "incomplete")
USED = ("adjudicated", "unanimous", "majority", "vote", "single")


def n_readers(store: ProjectStore) -> int:
    """``K``: how many annotators read each queried item (meta ``readers``, default 1)."""
    return int(store.get_meta("readers", 1) or 1)


def check_readers(readers: int) -> int:
    if isinstance(readers, bool) or not isinstance(readers, int) or readers < 1:
        raise ConfigError(f"--readers must be a whole number of at least 1, got {readers!r}")
    return readers


# -- adjudicators ---------------------------------------------------------------------------------
def set_adjudicator(store: ProjectStore, name: str, adjudicator: bool = True) -> None:
    """Mark annotator ``name`` as an adjudicator (their page offers the disagreements)."""
    with store.transaction() as tx:
        cur = tx.execute("UPDATE annotators SET adjudicator = ? WHERE name = ?",
                         (int(bool(adjudicator)), name.strip()))
        if cur.rowcount == 0:
            raise ConfigError(f"no annotator {name.strip()!r} in this project")


def is_adjudicator(store: ProjectStore, name: str) -> bool:
    rows = store.execute("SELECT adjudicator FROM annotators WHERE name = ?", (name,))
    return bool(rows and rows[0][0])


def adjudicators(store: ProjectStore) -> list[str]:
    return [r[0] for r in store.execute(
        "SELECT name FROM annotators WHERE adjudicator = 1 ORDER BY name")]


# -- readings and training labels -----------------------------------------------------------------
def readings(store: ProjectStore, sample_ids: Sequence[str] | None = None
             ) -> dict[str, list[Label]]:
    """Each sample's readings, one per annotator (their latest expert label), in the order the
    readers first read it."""
    sql = ("SELECT l.*, f.first FROM labels l JOIN (SELECT sample_id, annotator, MAX(seq) AS seq, "
           "MIN(seq) AS first FROM labels WHERE source = 'expert' GROUP BY sample_id, annotator) "
           "f ON l.seq = f.seq")
    params: tuple = ()
    if sample_ids is not None:
        sample_ids = list(sample_ids)
        if not sample_ids:
            return {}
        sql += f" WHERE l.sample_id IN ({','.join('?' * len(sample_ids))})"
        params = tuple(sample_ids)
    out: dict[str, list[tuple[int, Label]]] = {}
    for r in store.execute(sql + " ORDER BY f.first", params):
        row = dict(r)
        first = row.pop("first")
        out.setdefault(row["sample_id"], []).append((first, Label(**_label_fields(row))))
    return {sid: [lab for _, lab in rows] for sid, rows in out.items()}


def _label_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The columns of ``row`` that :class:`Label` has (a newer schema may add more)."""
    names = Label.__dataclass_fields__
    return {k: v for k, v in row.items() if k in names}


def adjudications(store: ProjectStore) -> dict[str, dict[str, Any]]:
    """Each adjudicated sample's latest decision ``{"seq", "value", "mask_path", "adjudicator",
    "created_at", "round", "readings"}`` (``readings``: the label seqs it decided between)."""
    import json

    rows = store.execute("SELECT a.* FROM adjudications a JOIN (SELECT sample_id, MAX(seq) AS "
                         "seq FROM adjudications GROUP BY sample_id) m ON a.seq = m.seq")
    return {r["sample_id"]: {**dict(r), "readings": json.loads(r["readings"])} for r in rows}


@dataclass(frozen=True)
class TrainingLabel:
    """A sample's training label and the rule that made it (one of :data:`RULES`).

    ``value`` (class index) or ``mask_path`` (project-relative PNG) is None when the rule gives
    no label (``unresolved``, ``incomplete``). ``round``: the round the label came into being
    (of the last reading, or of the adjudication), the labeled set ``L_round`` it joins.
    """

    sample_id: str
    rule: str
    round: int
    value: int | None = None
    mask_path: str | None = None
    readings: tuple[int, ...] = ()  # the label seqs it was made from

    @property
    def used(self) -> bool:
        return self.rule in USED

    @property
    def label(self) -> Any:
        return self.value if self.value is not None else self.mask_path


def vote_mask(masks: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """Per-pixel majority vote of ``K`` masks ``[H, W]`` of class indices; a tie goes to the
    lowest class index (background first).

    Example:
        >>> a, b = np.array([[0, 1, 1]]), np.array([[0, 1, 0]])
        >>> vote_mask([a, b], 2).tolist()  # two readers: foreground where both marked it
        [[0, 1, 0]]
    """
    stack = np.stack([np.asarray(m) for m in masks])
    votes = np.stack([(stack == c).sum(axis=0) for c in range(n_classes)])
    return votes.argmax(axis=0).astype(np.uint8)  # argmax: the first (lowest) of tied classes


def _resolve(store: ProjectStore, sid: str, rs: list[Label], k: int, *,
             write_masks: bool) -> TrainingLabel:
    seqs = tuple(r.seq for r in rs[:k])
    rnd = max(r.round for r in rs[:k])
    if len(rs) < k:
        return TrainingLabel(sid, "incomplete", rnd, readings=tuple(r.seq for r in rs))
    rs = rs[:k]
    if rs[0].value is not None:
        values = [r.value for r in rs]
        counts = np.bincount(values)
        best = int(counts.argmax())
        if counts[best] == k:
            return TrainingLabel(sid, "unanimous", rnd, value=best, readings=seqs)
        if int((counts == counts[best]).sum()) > 1:
            return TrainingLabel(sid, "unresolved", rnd, readings=seqs)
        return TrainingLabel(sid, "majority", rnd, value=best, readings=seqs)
    paths = [r.mask_path for r in rs]
    if len(set(paths)) == 1:  # masks are stored by content: same path, same pixels
        return TrainingLabel(sid, "unanimous", rnd, mask_path=paths[0], readings=seqs)
    masks = [load_mask(store, p) for p in paths]
    if all(np.array_equal(masks[0], m) for m in masks[1:]):
        return TrainingLabel(sid, "unanimous", rnd, mask_path=paths[0], readings=seqs)
    path = None
    if write_masks:
        from medactive.project.volumes import store_png

        path = store_png(store, vote_mask(masks, len(store.classes)))
    return TrainingLabel(sid, "vote", rnd, mask_path=path, readings=seqs)


def load_mask(store: ProjectStore, mask_path: str) -> np.ndarray:
    """A stored mask label ``[H, W]`` (class indices)."""
    from medactive.data.segmentation.masks import read_slice_mask

    return np.asarray(read_slice_mask(store.directory / mask_path))


def training_labels(store: ProjectStore, *, write_masks: bool = True
                    ) -> dict[str, TrainingLabel]:
    """Every labelled sample's training label with its rule (see the module docstring).

    ``write_masks``: store the vote mask of disagreeing masks (content-addressed PNG, harmless
    if orphaned) so that ``mask_path`` names it; False leaves it None (for reports).
    """
    k = n_readers(store)
    by_sample = readings(store)
    decided = adjudications(store)
    first_round = {sid: rnd for sid, (rnd, _) in store.first_label_rounds().items()}
    out: dict[str, TrainingLabel] = {}
    for sid, lab in store.current_labels().items():
        if sid in decided:
            d = decided[sid]
            out[sid] = TrainingLabel(sid, "adjudicated", int(d["round"]), value=d["value"],
                                     mask_path=d["mask_path"], readings=tuple(d["readings"]))
        elif sid in by_sample:
            out[sid] = _resolve(store, sid, by_sample[sid], k, write_masks=write_masks)
        else:
            out[sid] = TrainingLabel(sid, "single", first_round[sid], value=lab.value,
                                     mask_path=lab.mask_path, readings=(lab.seq,))
    return out


# -- leases and readings on the page --------------------------------------------------------------
class ReaderDesk:
    """The page's leases and label writes for a project of ``K`` readers.

    The methods are those of :class:`~medactive.project.store.ProjectStore` the server uses;
    with ``K = 1`` each one is the store's own, so a single-reader project behaves exactly as
    before. With ``K > 1`` leases are per reader (``reader_leases``) and a label is the
    annotator's reading.
    """

    def __init__(self, store: ProjectStore) -> None:
        self.store = store
        self.k = n_readers(store)

    # -- what an item looks like to one annotator
    def label_of(self, sample_id: str, who: str) -> Label | None:
        """The label the page shows ``who``: the sample's label (``K = 1``), else their own
        reading (readers do not see each other's)."""
        if self.k == 1:
            return self.store.current_labels_for([sample_id]).get(sample_id)
        return self._reading(self.store._conn(), sample_id, who)

    def held_by_other(self, sample_id: str, who: str) -> bool:
        if self.k == 1:
            return self.store.held_by_other(sample_id, who)
        conn = self.store._conn()
        if self._reading(conn, sample_id, who) is not None:
            return False
        n_read, others = self._slots(conn, sample_id, who, time.time())
        return n_read < self.k and n_read + len(others) >= self.k

    # -- leases
    def lease_next(self, who: str, *, seconds: float,
                   statuses: Sequence[str] = ("pending",)) -> QueryItem | None:
        if self.k == 1:
            return self.store.lease_next(who, seconds=seconds, statuses=statuses)
        review = "skipped" in statuses
        now = time.time()
        with self.store.transaction() as tx:
            mine = ("r.skipped = 1 AND q.status != 'labelled'" if review
                    else "r.skipped = 0 AND q.status = 'pending'")
            own = tx.execute(
                "SELECT r.round, r.sample_id FROM reader_leases r JOIN queries q ON "
                "q.round = r.round AND q.sample_id = r.sample_id WHERE r.annotator = ? AND "
                f"r.lease_expires > ? AND {mine} ORDER BY q.round, q.rank LIMIT 1",
                (who, now)).fetchone()
            pick = (own["round"], own["sample_id"]) if own is not None else None
            if pick is None:
                free, _ = self._candidates(tx, who, now, review=review)
                pick = free[0] if free else None
            if pick is None:
                return None
            self._lease(tx, pick[0], pick[1], who, now + seconds)
            row = tx.execute("SELECT round, sample_id, rank, score, status FROM queries WHERE "
                             "round = ? AND sample_id = ?", pick).fetchone()
        return QueryItem(**dict(row), lease_annotator=who, lease_expires=now + seconds)

    def held_by_others(self, who: str, *,
                       statuses: Sequence[str] = ("pending",)) -> tuple[int, float | None]:
        if self.k == 1:
            return self.store.held_by_others(who, statuses=statuses)
        _, held = self._candidates(self.store._conn(), who, time.time(),
                                   review="skipped" in statuses)
        return len(held), (min(held) if held else None)

    def take_lease(self, sample_id: str, who: str, *,
                   seconds: float) -> tuple[bool, str | None, float | None]:
        if self.k == 1:
            return self.store.take_lease(sample_id, who, seconds=seconds)
        now = time.time()
        with self.store.transaction() as tx:
            item = self._open_item(tx, sample_id)
            if item is None or self._reading(tx, sample_id, who) is not None:
                return False, None, None
            n_read, others = self._slots(tx, sample_id, who, now)
            if n_read >= self.k:
                return False, None, None
            if n_read + len(others) >= self.k:
                holder, until = min(others, key=lambda o: o[1])
                return False, holder, until
            self._lease(tx, item["round"], sample_id, who, now + seconds)
        return True, who, now + seconds

    def renew_lease(self, who: str, *, seconds: float) -> int:
        if self.k == 1:
            return self.store.renew_lease(who, seconds=seconds)
        now = time.time()
        with self.store.transaction() as tx:
            return tx.execute("UPDATE reader_leases SET lease_expires = ? WHERE annotator = ? "
                              "AND lease_expires > ?", (now + seconds, who, now)).rowcount

    def release_leases(self, who: str) -> int:
        if self.k == 1:
            return self.store.release_leases(who)
        with self.store.transaction() as tx:
            return tx.execute("UPDATE reader_leases SET lease_expires = NULL WHERE annotator = ? "
                              "AND lease_expires > ?", (who, time.time())).rowcount

    def set_status(self, sample_id: str, status: str, *, annotator: str | None = None) -> bool:
        """``skipped`` by a reader: their own skip (the item stays open for the others)."""
        if self.k == 1 or annotator is None:
            return self.store.set_status(sample_id, status, annotator=annotator)
        with self.store.transaction() as tx:
            item = self._open_item(tx, sample_id)
            if item is None:
                return False
            if self._reading(tx, sample_id, annotator) is None:
                tx.execute("INSERT INTO reader_leases(round, sample_id, annotator, lease_expires, "
                           "skipped) VALUES (?,?,?,NULL,1) ON CONFLICT(round, sample_id, "
                           "annotator) DO UPDATE SET lease_expires = NULL, skipped = 1",
                           (item["round"], sample_id, annotator))
        return True

    # -- labels
    def label_as_holder(self, label: NewLabel, *, annotator: str,
                        replaces: int | None = None) -> LabelWrite:
        """Write ``annotator``'s reading (one check-and-set transaction), as
        :meth:`ProjectStore.label_as_holder` writes a label: a first reading needs their lease
        (even one that ran out, unless the item has filled up meanwhile); a reading changes only
        by a correction naming it (``replaces``)."""
        if self.k == 1:
            return self.store.label_as_holder(label, annotator=annotator, replaces=replaces)
        store = self.store
        with store.transaction() as tx:
            sid = label.sample_id
            mine = self._reading(tx, sid, annotator)
            if mine is None:
                if replaces is not None:
                    return LabelWrite("stale", None)
                item = self._open_item(tx, sid)
                if item is None:
                    return LabelWrite("closed", None)
                lease = tx.execute("SELECT lease_expires FROM reader_leases WHERE round = ? AND "
                                   "sample_id = ? AND annotator = ?",
                                   (item["round"], sid, annotator)).fetchone()
                if lease is None or lease["lease_expires"] is None:
                    return LabelWrite("not_leased", None)
                now = time.time()
                n_read, others = self._slots(tx, sid, annotator, now)
                if n_read >= self.k:
                    return LabelWrite("closed", None)
                if lease["lease_expires"] <= now and n_read + len(others) >= self.k:
                    holder, until = min(others, key=lambda o: o[1])
                    return LabelWrite("held", None, holder, until)
            elif (mine.value, mine.mask_path) == (label.value, label.mask_path) and replaces in (
                    None, mine.seq):
                return LabelWrite("same", mine)
            elif replaces is None:
                return LabelWrite("labelled", mine)
            elif replaces != mine.seq:
                return LabelWrite("stale", mine)
            before = tx.execute("SELECT round, status FROM queries WHERE sample_id = ? AND "
                                "status != 'labelled'", (sid,)).fetchall()
            store.write_labels([label], annotator=annotator, source="expert", tx=tx)
            seq = int(tx.execute("SELECT last_insert_rowid()").fetchone()[0])
            if mine is not None:
                tx.execute("INSERT INTO corrections(seq, replaces, annotator, created_at) "
                           "VALUES (?,?,?,?)", (seq, mine.seq, annotator, now_iso()))
            if self._n_read(tx, sid) < self.k:  # not all readings yet: the item stays open
                tx.executemany("UPDATE queries SET status = ? WHERE round = ? AND sample_id = ?",
                               [(r["status"], r["round"], sid) for r in before])
            tx.execute("UPDATE reader_leases SET lease_expires = NULL WHERE sample_id = ? AND "
                       "annotator = ?", (sid, annotator))
            new = tx.execute("SELECT * FROM labels WHERE seq = ?", (seq,)).fetchone()
        return LabelWrite("written", Label(**_label_fields(dict(new))))

    # -- helpers (all inside the caller's connection / transaction)
    @staticmethod
    def _reading(conn: sqlite3.Connection, sample_id: str, who: str) -> Label | None:
        row = conn.execute("SELECT * FROM labels WHERE sample_id = ? AND annotator = ? AND "
                           "source = 'expert' ORDER BY seq DESC LIMIT 1",
                           (sample_id, who)).fetchone()
        return None if row is None else Label(**_label_fields(dict(row)))

    @staticmethod
    def _n_read(conn: sqlite3.Connection, sample_id: str) -> int:
        return int(conn.execute("SELECT COUNT(DISTINCT annotator) FROM labels WHERE "
                                "sample_id = ? AND source = 'expert'", (sample_id,)).fetchone()[0])

    @staticmethod
    def _open_item(conn: sqlite3.Connection, sample_id: str):
        """The sample's latest batch item if it is open (not labelled, not excluded)."""
        row = conn.execute("SELECT round, status FROM queries WHERE sample_id = ? ORDER BY "
                           "round DESC LIMIT 1", (sample_id,)).fetchone()
        if row is None or row["status"] == "labelled" or conn.execute(
                "SELECT 1 FROM excluded WHERE sample_id = ?", (sample_id,)).fetchone():
            return None
        return row

    def _slots(self, conn: sqlite3.Connection, sample_id: str, who: str, now: float
               ) -> tuple[int, list[tuple[str, float]]]:
        """``(readings so far, [(holder, until)] of others' unexpired leases on it)``."""
        others = conn.execute("SELECT r.annotator, r.lease_expires FROM reader_leases r JOIN "
                              "(SELECT MAX(round) AS round FROM queries WHERE sample_id = ?) q "
                              "ON q.round = r.round WHERE r.sample_id = ? AND r.annotator != ? "
                              "AND r.lease_expires > ?", (sample_id, sample_id, who, now))
        return self._n_read(conn, sample_id), [(r[0], float(r[1])) for r in others]

    def _candidates(self, conn: sqlite3.Connection, who: str, now: float, *, review: bool
                    ) -> tuple[list[tuple[int, str]], list[float]]:
        """Items ``who`` may read, in (round, rank) order: ``(free ones, [until] of those only
        others' leases keep from them)``."""
        status = "q.status != 'labelled'" if review else "q.status = 'pending'"
        rows = conn.execute(
            "SELECT q.round, q.sample_id, "
            "(SELECT COUNT(DISTINCT l.annotator) FROM labels l WHERE l.sample_id = q.sample_id "
            " AND l.source = 'expert') AS n_read, "
            "(SELECT COUNT(*) FROM reader_leases r WHERE r.round = q.round AND "
            " r.sample_id = q.sample_id AND r.annotator != :who AND r.lease_expires > :now) "
            " AS n_held, "
            "(SELECT MIN(r.lease_expires) FROM reader_leases r WHERE r.round = q.round AND "
            " r.sample_id = q.sample_id AND r.annotator != :who AND r.lease_expires > :now) "
            " AS until "
            f"FROM queries q WHERE {status} AND q.sample_id NOT IN (SELECT sample_id FROM "
            "excluded) AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.sample_id = q.sample_id "
            " AND l.source = 'expert' AND l.annotator = :who) AND "
            f"{'' if review else 'NOT '}EXISTS (SELECT 1 FROM reader_leases r WHERE "
            " r.round = q.round AND r.sample_id = q.sample_id AND r.annotator = :who AND "
            " r.skipped = 1) "
            "ORDER BY q.round, q.rank", {"who": who, "now": now}).fetchall()
        free, held = [], []
        for r in rows:
            if r["n_read"] >= self.k:
                continue
            if r["n_read"] + r["n_held"] >= self.k:
                held.append(float(r["until"]))
            else:
                free.append((int(r["round"]), str(r["sample_id"])))
        return free, held

    @staticmethod
    def _lease(tx: sqlite3.Connection, rnd: int, sample_id: str, who: str, until: float) -> None:
        """``who`` gives up their other leases and holds this item until ``until``."""
        tx.execute("UPDATE reader_leases SET lease_expires = NULL WHERE annotator = ?", (who,))
        tx.execute("INSERT INTO reader_leases(round, sample_id, annotator, lease_expires) "
                   "VALUES (?,?,?,?) ON CONFLICT(round, sample_id, annotator) DO UPDATE SET "
                   "lease_expires = excluded.lease_expires", (rnd, sample_id, who, until))
