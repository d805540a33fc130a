"""``project adjudicate``: an adjudicator's decisions on the disagreements of double reading.

A decision names a disagreement (:func:`medactive.project.agreement.agreement_report`) and the
label that settles it: a class (``--label CLASS``, classification) or one reader's reading
(``--reader NAME``: that reader's class or mask). It is appended to ``adjudications`` and
becomes the sample's training label (rule ``adjudicated``); the readings stay as they are in
``labels``. A later decision on the same sample replaces the earlier one (both are kept).

Decisions from a CSV (``id,label`` or ``id,reader``) are all-or-nothing: every row is checked
first, every problem is listed with its line number, and all are written in one transaction.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from medactive.errors import ConfigError, DataError
from medactive.project.readings import n_readers, readings
from medactive.project.store import ProjectStore, atomic_write_bytes, now_iso

#: test hooks: a file receiving the number of decisions written inside the transaction so far,
#: and a pause after each, so that a test can SIGKILL an adjudication at a known point
MARK_ENV = "MEDACTIVE_TEST_ADJUDICATE_MARK"
DELAY_ENV = "MEDACTIVE_TEST_ADJUDICATE_DELAY"


@dataclass(frozen=True)
class Decision:
    """``sample_id`` settled by class name ``label`` or by the reading of ``reader``;
    ``where`` names its origin in errors (``"--sample"``, ``"FILE line 3"``)."""

    sample_id: str
    label: str | None = None
    reader: str | None = None
    where: str = "--sample"


def read_decisions(path: str | Path) -> list[Decision]:
    """The decisions of a CSV with columns ``id`` and ``label`` or ``reader``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip().lower() for c in reader.fieldnames or []]
        if "id" not in cols or not ({"label", "reader"} & set(cols)):
            raise DataError(f"{path}: needs a header with 'id' and 'label' or 'reader' "
                            f"columns, got {', '.join(cols) or 'none'}")
        out = []
        for i, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            out.append(Decision(row.get("id", ""), label=row.get("label") or None,
                                reader=row.get("reader") or None, where=f"{path} line {i}"))
    if not out:
        raise DataError(f"{path}: no decisions (only a header)")
    return out


def adjudicate(store: ProjectStore, decisions: list[Decision], *, by: str) -> int:
    """Check every decision, then write them all in one transaction (or none).

    Raises:
        ConfigError / DataError: a single-reader project; an unknown sample id, class name or
            reader, a sample that is not a disagreement, a sample named twice (all problems
            listed, one per line, each with ``Decision.where``). Nothing is written.
    """
    from medactive.project.agreement import agreement_report

    if n_readers(store) < 2:
        raise ConfigError(f"{store.directory}: a project with one reader per item has nothing "
                          "to adjudicate (double reading: `project init --readers 2`)")
    by = (by or "").strip()
    if not by:
        raise ConfigError("--by: the adjudicator's name is empty")
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    mark = os.environ.get(MARK_ENV)
    classes = store.classes
    with store.transaction() as tx:  # checked inside it: nobody decides the same item meanwhile
        open_ = {d["sample_id"]: d for d in agreement_report(store)["disagreements"]}
        by_sample = readings(store, [d.sample_id for d in decisions])
        rows, problems, seen = [], [], set()
        for d in decisions:
            problem, row = _check(store, d, open_, by_sample, classes, seen)
            seen.add(d.sample_id)
            if problem:
                problems.append(f"{d.where}: {problem}")
            else:
                rows.append(row)
        if problems:
            shown = problems[:10] + ([f"... {len(problems) - 10} more"]
                                     if len(problems) > 10 else [])
            err = ConfigError if len(decisions) == 1 else DataError
            raise err("; ".join(shown) if len(decisions) == 1 else
                      f"{len(problems)} of {len(decisions)} decisions refused, nothing "
                      "written:\n" + "\n".join(shown))
        rnd = max(0, store.current_round())
        stamp = now_iso()
        for i, (sid, value, mask_path, seqs) in enumerate(rows):
            tx.execute("INSERT INTO adjudications(sample_id, value, mask_path, adjudicator, "
                       "created_at, round, readings) VALUES (?,?,?,?,?,?,?)",
                       (sid, value, mask_path, by, stamp, rnd, json.dumps(seqs)))
            if mark:
                atomic_write_bytes(mark, str(i + 1).encode())
            if delay:
                time.sleep(delay)
    return len(rows)


def _check(store, d: Decision, open_, by_sample, classes, seen):
    """``(problem, None)`` or ``(None, (sample_id, value, mask_path, reading seqs))``."""
    sid = d.sample_id
    if not sid:
        return "empty sample id", None
    if store.sample(sid) is None:
        return f"unknown sample id {sid!r}", None
    if sid in seen:
        return f"sample {sid!r} is named twice", None
    if sid not in open_:
        rs = by_sample.get(sid, [])
        k = n_readers(store)
        if len(rs) < k:
            return (f"sample {sid!r} is not a disagreement: it has {len(rs)} of {k} readings"),\
                None
        return (f"sample {sid!r} is not a disagreement: its readers agree "
                f"({', '.join(_shown(r, classes) for r in rs[:k])})"), None
    rs = by_sample[sid][:n_readers(store)]
    seqs = [r.seq for r in rs]
    if (d.label is None) == (d.reader is None):
        return "give either a class (label) or the reader whose reading to keep", None
    if d.reader is not None:
        chosen = [r for r in rs if r.annotator == d.reader]
        if not chosen:
            return (f"{d.reader!r} is not a reader of {sid!r} (readers: "
                    f"{', '.join(r.annotator for r in rs)})"), None
        return None, (sid, chosen[0].value, chosen[0].mask_path, seqs)
    if store.task != "classification":
        return "a mask is settled by a reader's mask: give the reader, not a label", None
    if d.label not in classes:
        return f"{d.label!r} is not a class (classes: {', '.join(classes)})", None
    return None, (sid, classes.index(d.label), None, seqs)


def _shown(r, classes) -> str:
    return classes[r.value] if r.value is not None else str(r.mask_path)
