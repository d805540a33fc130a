"""``project adjudicate``: an adjudicator's decisions on the disagreements of double reading.

A decision names a disagreement (:func:`medactive.project.agreement.agreement_report`) and the
label that settles it: a class (``--label CLASS``, classification), one reader's reading
(``--reader NAME``: that reader's class or mask) or, from the adjudicator's page, a mask the
adjudicator edited (``Decision.mask``, started from the readers' vote or from one reader's mask,
``Decision.start``). It is appended to ``adjudications`` with how it was made (``method``
``label`` / ``reader`` / ``edited``, and ``reader``: the reader kept, or the one the edit started
from; ``project adjudicate --mask FILE`` reads an edited mask from a file,
:func:`read_edited_mask`) and becomes the sample's training label (rule ``adjudicated``); the readings stay as they
are in ``labels``. A later decision on the same sample replaces the earlier one (both are kept).

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

import numpy as np

from medactive.errors import ConfigError, DataError
from medactive.project.readings import n_readers, readings
from medactive.project.store import ProjectStore, atomic_write_bytes, now_iso

#: test hooks: a file receiving the number of decisions written inside the transaction so far,
#: and a pause after each, so that a test can SIGKILL an adjudication at a known point
MARK_ENV = "MEDACTIVE_TEST_ADJUDICATE_MARK"
DELAY_ENV = "MEDACTIVE_TEST_ADJUDICATE_DELAY"


#: ``Decision.start`` of an edited mask that started from the readers' per-pixel vote
START_VOTE = "vote"


@dataclass(frozen=True, eq=False)
class Decision:
    """``sample_id`` settled by class name ``label``, by the reading of ``reader``, or by an
    edited ``[H, W]`` class ``mask`` (segmentation) that started from ``start`` (``"vote"`` or a
    reader's name); ``where`` names its origin in errors (``"--sample"``, ``"FILE line 3"``)."""

    sample_id: str
    label: str | None = None
    reader: str | None = None
    where: str = "--sample"
    mask: np.ndarray | None = None
    start: str | None = None


class DecisionRefused(ConfigError):
    """A single decision refused by :func:`adjudicate`; ``field`` names what was wrong in it
    (``"sample"``, ``"label"``, ``"reader"``, ``"mask"``, ``"start"``), None when the sample is
    not (or no longer) a disagreement; ``problem`` is the message without ``where``."""

    def __init__(self, message: str, *, field: str | None, problem: str) -> None:
        super().__init__(message)
        self.field = field
        self.problem = problem


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


#: the files ``project adjudicate --mask`` reads: an imported mask's formats and a NumPy array
EDITED_MASK_SUFFIXES = (".png", ".nii.gz", ".nii", ".npy")


def read_edited_mask(store: ProjectStore, sample_id: str, path: str | Path) -> np.ndarray:
    """The adjudicator's edited mask of ``sample_id`` from a file (``--mask FILE``): PNG or
    NIfTI read as an imported mask is (:func:`~medactive.data.segmentation.masks.
    read_slice_mask`), or a ``.npy`` array; checked as the page's edited mask is (the item's
    shape, values ``0..C-1``: :func:`medactive.project.volumes.check_mask_array`), not stored;
    :func:`adjudicate` checks it against the readers' masks.

    Raises:
        DataError: a missing, unreadable or unsupported file, a wrong shape or a value that is
            not a class; the message starts with ``--mask FILE``.
    """
    from medactive.data.segmentation.masks import read_slice_mask
    from medactive.project.volumes import check_mask_array

    sample = store.sample(sample_id)
    if sample is None:
        raise ConfigError(f"--sample: unknown sample id {sample_id!r}")
    path = Path(path)
    where = f"--mask {path}"
    name = path.name.lower()
    if not name.endswith(EDITED_MASK_SUFFIXES):
        raise DataError(f"{where}: not a mask file ({', '.join(EDITED_MASK_SUFFIXES)})")
    if not path.is_file():
        raise DataError(f"{where}: mask file not found")
    if name.endswith(".npy"):
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":  # else numpy blames pickled data
                raise DataError(f"{where}: not a readable .npy array (no NumPy header)")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{where}: not a readable .npy array ({exc})") from exc
    else:
        try:
            arr = read_slice_mask(path)
        except DataError as exc:  # its message names the file
            raise DataError(f"--mask {exc}") from exc
    return check_mask_array(store, sample, np.asarray(arr), where)


def adjudicate(store: ProjectStore, decisions: list[Decision], *, by: str) -> int:
    """Check every decision, then write them all in one transaction (or none).

    An edited mask is checked (the readers' mask shape, values ``0..C-1``) and stored as a PNG
    (content-addressed, :func:`medactive.project.volumes.store_png`) only once every decision
    has passed.

    Raises:
        ConfigError / DataError: a single-reader project; an unknown sample id, class name or
            reader, a bad mask, a sample that is not a disagreement, a sample named twice (all
            problems listed, one per line, each with ``Decision.where``). Nothing is written.
            One decision refused: :class:`DecisionRefused`, naming the field.
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
            problem, field, row = _check(store, d, open_, by_sample, classes, seen)
            seen.add(d.sample_id)
            if problem:
                problems.append(f"{d.where}: {problem}")
            else:
                rows.append(row)
        if problems:
            if len(decisions) == 1:
                raise DecisionRefused(problems[0], field=field, problem=problem)
            shown = problems[:10] + ([f"... {len(problems) - 10} more"]
                                     if len(problems) > 10 else [])
            raise DataError(f"{len(problems)} of {len(decisions)} decisions refused, nothing "
                            "written:\n" + "\n".join(shown))
        rnd = max(0, store.current_round())
        stamp = now_iso()
        for i, (sid, value, mask_path, seqs, method, reader) in enumerate(rows):
            if isinstance(mask_path, np.ndarray):  # an edited mask: kept once all passed
                from medactive.project.volumes import store_png

                mask_path = store_png(store, mask_path)
            tx.execute("INSERT INTO adjudications(sample_id, value, mask_path, adjudicator, "
                       "created_at, round, readings, method, reader) VALUES (?,?,?,?,?,?,?,?,?)",
                       (sid, value, mask_path, by, stamp, rnd, json.dumps(seqs), method, reader))
            if mark:
                atomic_write_bytes(mark, str(i + 1).encode())
            if delay:
                time.sleep(delay)
    return len(rows)


def _check(store, d: Decision, open_, by_sample, classes, seen):
    """``(problem, field, None)`` or ``(None, None, (sample_id, value, mask_path or the edited
    mask array, reading seqs, method, reader))``."""
    sid = d.sample_id
    if not sid:
        return "empty sample id", "sample", None
    if store.sample(sid) is None:
        return f"unknown sample id {sid!r}", "sample", None
    if sid in seen:
        return f"sample {sid!r} is named twice", "sample", None
    if sid not in open_:
        rs = by_sample.get(sid, [])
        k = n_readers(store)
        if len(rs) < k:
            return (f"sample {sid!r} is not a disagreement: it has {len(rs)} of {k} "
                    "readings"), None, None
        return (f"sample {sid!r} is not a disagreement: its readers agree "
                f"({', '.join(_shown(r, classes) for r in rs[:k])})"), None, None
    rs = by_sample[sid][:n_readers(store)]
    seqs = [r.seq for r in rs]
    names = ", ".join(r.annotator for r in rs)
    if d.mask is not None:
        return _check_edited(store, d, rs, seqs, names)
    if (d.label is None) == (d.reader is None):
        return "give either a class (label) or the reader whose reading to keep", "label", None
    if d.reader is not None:
        chosen = [r for r in rs if r.annotator == d.reader]
        if not chosen:
            return f"{d.reader!r} is not a reader of {sid!r} (readers: {names})", "reader", None
        return None, None, (sid, chosen[0].value, chosen[0].mask_path, seqs, "reader", d.reader)
    if store.task != "classification":
        return "a mask is settled by a reader's mask: give the reader, not a label", "label", None
    if d.label not in classes:
        return f"{d.label!r} is not a class (classes: {', '.join(classes)})", "label", None
    return None, None, (sid, classes.index(d.label), None, seqs, "label", None)


def _check_edited(store, d: Decision, rs, seqs, names):
    """The checks of an edited mask (:func:`_check`'s answer)."""
    from medactive.project.readings import load_mask

    sid = d.sample_id
    if store.task != "segmentation":
        return "an edited mask settles a mask disagreement, not a class", "mask", None
    if d.label is not None or d.reader is not None:
        return "give an edited mask or a label or a reader, not both", "mask", None
    if d.start != START_VOTE and d.start not in {r.annotator for r in rs}:
        said = f"{d.start!r} is not a reader of {sid!r}" if d.start else "missing"
        return (f"{said}: say where the edit started, {START_VOTE!r} (the readers' vote) or a "
                f"reader ({names})"), "start", None
    mask = np.asarray(d.mask)
    shape = load_mask(store, rs[0].mask_path).shape
    if mask.shape != shape:
        return (f"mask shape {mask.shape} does not match the readers' masks {shape}"), "mask", \
            None
    n = len(store.classes)
    if (mask.ndim != 2 or not np.issubdtype(mask.dtype, np.number) or not np.all(np.isfinite(mask))
            or np.any(mask != np.round(mask)) or mask.min() < 0 or mask.max() >= n):
        return f"mask values must be integers 0..{n - 1}", "mask", None
    reader = None if d.start == START_VOTE else d.start
    return None, None, (sid, None, mask.astype(np.uint8), seqs, "edited", reader)


def _shown(r, classes) -> str:
    return classes[r.value] if r.value is not None else str(r.mask_path)
