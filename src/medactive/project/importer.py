"""``project import``: class labels from a CSV, masks from NIfTI/PNG files, all or nothing.

Every row is checked before anything is written; a file with any bad row (unknown id, class not
in the project, duplicate id, empty id, bad split, mask shape mismatch, a label that would
silently replace a different existing one) is refused as a whole with one line per bad row. A
good file is written in ONE transaction, so a process killed during the import leaves either all
of its labels or none (rerunning it then continues: labels equal to the stored ones are skipped).

CSV layout: a header with ``id`` (or ``path``, relative to the image folder) and ``label``
(a class name of the project), optionally ``split`` (``pool``/``train``, ``val``, ``test``) to
put unlabelled samples into the validation or test set. Rows with an empty label are skipped
(an exported batch labelled in part). Segmentation: ``label`` names a mask file
(relative to the CSV), or FILE is a folder of mask files named by sample id.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medactive.data.segmentation.masks import read_slice_mask
from medactive.errors import DataError
from medactive.project.store import Label, NewLabel, ProjectStore, atomic_write_bytes

logger = logging.getLogger(__name__)

SPLIT_ALIASES = {"pool": "pool", "train": "pool", "val": "val", "valid": "val",
                 "validation": "val", "test": "test"}
MASK_SUFFIXES = (".nii.gz", ".nii", ".png")
#: test hooks: seconds to sleep after each row written inside the import transaction, and a
#: file that receives the number of rows written so far (so a test can kill at a known row)
DELAY_ENV = "MEDACTIVE_TEST_IMPORT_DELAY"
MARK_ENV = "MEDACTIVE_TEST_IMPORT_MARK"


@dataclass
class LabelRow:
    """One checked CSV row."""

    line: int
    sample_id: str
    value: int | None = None
    mask_file: Path | None = None
    split: str | None = None


@dataclass
class ImportReport:
    """What an import did."""

    n_rows: int = 0
    n_written: int = 0
    n_unchanged: int = 0
    n_replaced: int = 0
    n_empty: int = 0
    moved: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        text = (f"{self.n_written} labels written ({self.n_replaced} replaced), "
                f"{self.n_unchanged} unchanged, {self.n_empty} without a label, "
                f"{self.n_rows} rows")
        if self.moved:
            text += "; moved to " + ", ".join(f"{s}: {n}" for s, n in sorted(self.moved.items()))
        return text


class BadRows(DataError):
    """A file with bad rows; ``problems`` holds ``(line, message)`` pairs."""

    def __init__(self, source: str | Path, problems: list[tuple[int, str]], *,
                 kind: str = "line") -> None:
        self.problems = problems
        lines = "\n".join(f"  {kind} {line}: {msg}" for line, msg in problems)
        super().__init__(f"{source}: {len(problems)} bad row{'s' * (len(problems) != 1)}, "
                         f"nothing imported:\n{lines}")


def read_label_csv(path: str | Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (lower-case) and ``(line number, row)`` pairs of a CSV; blank lines dropped."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
            rows = []
            for row in reader:
                clean = {(k or "").strip().lower(): (v or "").strip() if isinstance(v, str) else ""
                         for k, v in row.items() if k is not None}
                if any(clean.values()):
                    rows.append((reader.line_num, clean))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the CSV ({exc})") from exc
    return header, rows


def check_label_rows(path: str | Path, *, classes: list[str], sample_splits: dict[str, str],
                     current: dict[str, Label], in_batch: set[str], task: str = "classification",
                     images_root: Path | None = None, overwrite: bool = False,
                     mask_shape: Callable[[str], tuple[int, ...]] | None = None,
                     excluded: set[str] | frozenset[str] = frozenset(),
                     ) -> list[LabelRow]:
    """Parse and check every row of a labels CSV; raise :class:`BadRows` listing all bad rows.

    Args:
        path: the CSV.
        classes: the project's class names.
        sample_splits: ``{sample_id: split}`` of the project's samples.
        current: each sample's current label.
        in_batch: ids of samples that belong to a queried batch (cannot change split).
        task: ``"classification"`` (label = class name) or ``"segmentation"`` (label = mask
            file, relative to the CSV's folder).
        images_root: the image folder, to turn a ``path`` column into ids.
        overwrite: allow a row to replace a different existing label.
        mask_shape: ``sample_id -> expected mask shape`` (segmentation).
        excluded: ids of excluded samples (``project exclude``): refused with that reason.
    """
    path = Path(path)
    header, raw = read_label_csv(path)
    return check_rows(path, header, raw, classes=classes, sample_splits=sample_splits,
                      current=current, in_batch=in_batch, task=task, images_root=images_root,
                      overwrite=overwrite, mask_shape=mask_shape, excluded=excluded,
                      base=path.parent)


def check_rows(path: str | Path, header: list[str], raw: list[tuple[int, dict[str, str]]], *,
               classes: list[str], sample_splits: dict[str, str], current: dict[str, Label],
               in_batch: set[str], task: str = "classification",
               images_root: Path | None = None, overwrite: bool = False,
               mask_shape: Callable[[str], tuple[int, ...]] | None = None,
               excluded: set[str] | frozenset[str] = frozenset(), base: Path | None = None,
               kind: str = "line") -> list[LabelRow]:
    """The checks of :func:`check_label_rows` on rows already read: ``header`` (lower-case
    column names) and ``(number, row)`` pairs, numbered as ``kind`` (``"line"`` of a CSV,
    ``"task"`` of a Label Studio export) in errors; mask files are relative to ``base``."""
    path = Path(path)
    base = path.parent if base is None else base
    key = "id" if "id" in header else "path" if "path" in header else None
    has_label = "label" in header or (task == "segmentation" and "mask" in header)
    if key is None or not (has_label or "split" in header):
        raise DataError(f"{path}: needs the columns 'id' (or 'path') and 'label'; found "
                        f"{header}")
    label_col = "label" if "label" in header else "mask"
    lookup = {c: i for i, c in enumerate(classes)}
    problems: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    rows: list[LabelRow] = []
    for line, row in raw:
        sample_id = row.get(key, "")
        if key == "path" and sample_id:
            sample_id = _id_from_path(sample_id, images_root)
        if not sample_id:
            problems.append((line, f"empty {key}"))
            continue
        problem = _id_problem(sample_id, line, first_line, sample_splits, kind,
                              excluded=excluded)
        if problem:
            problems.append((line, problem))
            continue
        out = LabelRow(line, sample_id)
        bad = False
        if "split" in header and row.get("split"):
            split = SPLIT_ALIASES.get(row["split"].lower())
            if split is None:
                problems.append((line, f"split {row['split']!r} is not pool, val or test"))
                bad = True
            elif split != sample_splits[sample_id]:
                if sample_id in in_batch or sample_id in current:
                    problems.append((line, (f"{sample_id!r} is already labelled or queried in the "
                                           f"{sample_splits[sample_id]!r} split; it cannot move "
                                           f"to {split!r}")))
                    bad = True
                else:
                    out.split = split
        value = row.get(label_col, "") if has_label else ""
        if not value:  # not labelled (yet): e.g. an exported batch filled in part
            if not bad:
                rows.append(out)
            continue
        if task == "classification":
            if value not in lookup:
                problems.append((line, (f"class {value!r} is not in the project (classes: "
                                       f"{', '.join(classes)})")))
                continue
            out.value = lookup[value]
        else:
            mask_file = Path(value) if Path(value).is_absolute() else base / value
            problem = _check_mask(mask_file, sample_id, mask_shape, len(classes))
            if problem:
                problems.append((line, problem))
                continue
            out.mask_file = mask_file
        old = current.get(sample_id)
        if (old is not None and out.value is not None and old.value != out.value
                and not overwrite):
            old_name = classes[old.value] if old.value is not None and old.value < len(
                classes) else old.value
            problems.append((line, (f"{sample_id!r} is already labelled {old_name!r} (by "
                                   f"{old.annotator}, {old.source}); pass --overwrite to replace")))
            continue
        if not bad:
            rows.append(out)
    if problems:
        raise BadRows(path, problems, kind=kind)
    return rows


def _id_problem(sample_id: str, where: int, first_seen: dict[str, int], known,
                kind: str, *, excluded=frozenset()) -> str | None:
    """Why ``sample_id`` (on line/file number ``where``) cannot be imported: a repeat of an
    earlier row, an excluded sample, or not a sample of the project; records the first
    sighting."""
    if sample_id in first_seen:
        return f"duplicate id {sample_id!r} (first on {kind} {first_seen[sample_id]})"
    first_seen[sample_id] = where
    if sample_id in excluded:
        return (f"{sample_id!r} is excluded from the project (`medactive project exclude DIR "
                f"{sample_id} --undo` brings it back)")
    if sample_id not in known:
        return f"unknown id {sample_id!r} (not a sample of the project)"
    return None


def check_mask_folder(folder: str | Path, *, sample_ids: set[str],
                      mask_shape: Callable[[str], tuple[int, ...]], n_classes: int,
                      excluded: set[str] | frozenset[str] = frozenset(),
                      ) -> list[LabelRow]:
    """Masks named by sample id in ``folder`` (``<id>.nii.gz``, ``<id>.png``, optionally with a
    ``_mask`` suffix); raise :class:`BadRows` (numbered in file order) for any bad file."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    problems: list[tuple[int, str]] = []
    rows: list[LabelRow] = []
    seen: dict[str, int] = {}
    for n, file in enumerate(files, start=1):
        rel = file.relative_to(folder).as_posix()
        suffix = next((s for s in MASK_SUFFIXES if rel.lower().endswith(s)), None)
        if suffix is None:
            problems.append((n, f"{rel}: not a mask file ({', '.join(MASK_SUFFIXES)})"))
            continue
        sample_id = rel[: -len(suffix)]
        sample_id = sample_id.removesuffix("_mask")
        problem = _id_problem(sample_id, n, seen, sample_ids, "file", excluded=excluded)
        if problem:
            problems.append((n, f"{rel}: {problem}"))
            continue
        problem = _check_mask(file, sample_id, mask_shape, n_classes)
        if problem:
            problems.append((n, f"{rel}: {problem}"))
            continue
        rows.append(LabelRow(n, sample_id, mask_file=file))
    if not files:
        raise DataError(f"{folder}: no mask files")
    if problems:
        raise BadRows(folder, problems)
    return rows


def _check_mask(file: Path, sample_id: str, mask_shape, n_classes: int) -> str | None:
    if not file.is_file():
        return f"mask file {file} not found"
    try:
        arr = read_slice_mask(file)
    except DataError as exc:
        return str(exc)
    if mask_shape is not None:
        expected = mask_shape(sample_id)
        allowed = [tuple(e) for e in expected] if isinstance(expected, list) else [
            tuple(expected)]
        if tuple(arr.shape) not in allowed:
            if len(allowed) > 1:  # a patch: its own shape or its slice's
                return (f"mask shape {tuple(arr.shape)} matches neither the patch "
                        f"{sample_id!r} {allowed[0]} nor its slice {allowed[1]}")
            return (f"mask shape {tuple(arr.shape)} does not match the image of {sample_id!r} "
                    f"{allowed[0]}")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        return "mask has non-numeric or non-finite values"
    if np.any(arr != np.round(arr)) or arr.min() < 0 or arr.max() >= n_classes:
        return f"mask values must be integers 0..{n_classes - 1}"
    return None


def _id_from_path(value: str, images_root: Path | None) -> str:
    p = Path(value)
    if p.is_absolute() and images_root is not None:
        try:
            p = p.relative_to(images_root)
        except ValueError:
            return p.with_suffix("").name
    return p.with_suffix("").as_posix()


def mask_store_path(source: Path) -> str:
    """Where a mask file is kept inside the project: ``masks/<content hash><suffix>``."""
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:24]
    suffix = ".nii.gz" if source.name.lower().endswith(".nii.gz") else source.suffix.lower()
    return f"masks/{digest}{suffix}"


def store_mask_file(store: ProjectStore, source: Path) -> str:
    """Copy a mask into ``DIR/masks/`` under its content hash (atomic); return the relative
    path. The project's copy is what the label refers to, so later edits of the source file
    cannot change a stored label."""
    rel = mask_store_path(source)
    target = store.directory / rel
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    return rel


def slice_mask_shape(store: ProjectStore, patch_sample_id: str) -> tuple[int, int]:
    """``(H, W)`` of the slice of a patch sample."""
    from medactive.project.volumes import slice_shape

    return slice_shape(store, patch_sample_id)


def _patches_by_slice(store: ProjectStore) -> dict[str, list[str]]:
    """``{slice id: [patch ids]}`` of a region project's pool."""
    from medactive.project.regions import split_patch_id

    out: dict[str, list[str]] = {}
    for sid in store.pool_ids():
        out.setdefault(split_patch_id(sid)[0], []).append(sid)
    return out


def _expand_slice_rows(rows: list[LabelRow], patches: dict[str, list[str]], source: Path
                       ) -> list[LabelRow]:
    """A whole-slice mask named by a slice id labels every patch of the slice; a patch named
    twice (by its own file and its slice's) is refused."""
    out: list[LabelRow] = []
    first: dict[str, int] = {}
    problems: list[tuple[int, str]] = []
    for row in rows:
        for pid in patches.get(row.sample_id, [row.sample_id]):
            if pid in first:
                problems.append((row.line, (f"patch {pid!r} is also labelled by file "
                                            f"{first[pid]}")))
                continue
            first[pid] = row.line
            out.append(LabelRow(row.line, pid, mask_file=row.mask_file))
    if problems:
        raise BadRows(source, problems)
    return out


def _patch_crops(store: ProjectStore, rows: list[LabelRow], source: Path, *,
                 kind: str = "line") -> dict[int, tuple[str, np.ndarray]]:
    """``{id(row): (masks/<hash>.png, [h, w] patch label)}`` of the mask rows of a region
    project (each file read once)."""
    from medactive.project.volumes import mask_png, patch_mask

    out: dict[int, tuple[str, np.ndarray]] = {}
    problems: list[tuple[int, str]] = []
    cache: dict[Path, np.ndarray] = {}
    for row in rows:
        if row.mask_file is None:
            continue
        if row.mask_file not in cache:
            cache = {row.mask_file: read_slice_mask(row.mask_file)}  # rows of a file are adjacent
        try:
            crop = patch_mask(store, row.sample_id, cache[row.mask_file],
                              f"mask for {row.sample_id!r}")
        except DataError as exc:
            problems.append((row.line, str(exc)))
            continue
        out[id(row)] = (mask_png(crop)[0], crop)
    if problems:
        raise BadRows(source, problems, kind=kind)
    return out


def _test_hook():
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    mark = os.environ.get(MARK_ENV)
    if delay <= 0 and not mark:
        return None

    def hook(i: int) -> None:
        if mark:
            atomic_write_bytes(mark, str(i + 1).encode())
        if delay > 0:
            time.sleep(delay)

    return hook


def import_labels(store: ProjectStore, path: str | Path, *, annotator: str | None = None,
                  overwrite: bool = False, source: str = "import") -> ImportReport:
    """Import a labels CSV (or a folder of masks) into the project, all or nothing.

    Args:
        store: the project.
        path: CSV file, or (segmentation) a folder of masks named by sample id.
        annotator: who made the labels (default ``import:<file name>``).
        overwrite: let rows replace different existing labels (the old ones stay in the
            history).
        source: ``"import"`` (or ``"initial"`` when called by ``init``).

    Raises:
        BadRows: any bad row; the message lists each with its line number.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    task = store.task
    classes = store.classes
    sample_splits = {s.id: s.split for s in store.samples()}
    current = store.current_labels()
    in_batch = {q.sample_id for q in store.queries()}
    mask_shape = None
    region = task == "segmentation" and store.get_meta("region_size") is not None
    if task == "segmentation":
        from medactive.project.volumes import mask_shapes, sample_shape

        mask_shape = ((lambda sid: mask_shapes(store, sid)) if region
                      else (lambda sid: sample_shape(store, sid)))
    if path.is_dir():
        if task != "segmentation":
            raise DataError(f"{path}: a folder can only be imported as masks into a "
                            "segmentation project; give a CSV with id,label")
        known = set(sample_splits)
        patches: dict[str, list[str]] = {}
        if region:
            patches = _patches_by_slice(store)
            known |= set(patches)
            inner_shape = mask_shape
            mask_shape = lambda sid: (slice_mask_shape(store, patches[sid][0])
                                      if sid in patches else inner_shape(sid))
        rows = check_mask_folder(path, sample_ids=known, mask_shape=mask_shape,
                                 n_classes=len(classes), excluded=store.excluded_ids())
        if region:
            rows = _expand_slice_rows(rows, patches, path)
    else:
        rows = check_label_rows(path, classes=classes, sample_splits=sample_splits,
                                current=current, in_batch=in_batch, task=task,
                                images_root=store.images_root, overwrite=overwrite,
                                mask_shape=mask_shape, excluded=store.excluded_ids())
    return commit_rows(store, rows, path, annotator=annotator, overwrite=overwrite,
                       source=source, current=current)


def commit_rows(store: ProjectStore, rows: list[LabelRow], path: str | Path, *,
                annotator: str | None = None, overwrite: bool = False, source: str = "import",
                current: dict[str, Label] | None = None, kind: str = "line") -> ImportReport:
    """Write checked rows (of :func:`check_rows` or :func:`check_mask_folder`) in ONE
    transaction, after the last checks (a mask that would replace another without
    ``overwrite``; a region project's patch crops); ``path`` names the source in errors and in
    the default annotator ``import:<file name>``. Rows equal to the stored labels are skipped,
    so rerunning an interrupted import finishes it."""
    path = Path(path)
    current = store.current_labels() if current is None else current
    region = store.task == "segmentation" and store.get_meta("region_size") is not None
    crops: dict[int, tuple[str, np.ndarray]] = {}
    if region:  # a patch's label is the patch alone: crop, then name it by content
        crops = _patch_crops(store, rows, path, kind=kind)
    report = ImportReport(n_rows=len(rows))
    new: list[NewLabel] = []
    conflicts: list[tuple[int, str]] = []
    for row in rows:
        if row.mask_file is not None:
            old = current.get(row.sample_id)
            rel = crops[id(row)][0] if region else mask_store_path(row.mask_file)
            if old is not None and old.mask_path == rel:
                report.n_unchanged += 1
            elif old is not None and not overwrite:
                conflicts.append((row.line, (f"{row.sample_id!r} already has a mask (by "
                                            f"{old.annotator}, {old.source}); pass --overwrite "
                                            "to replace")))
            else:
                report.n_replaced += old is not None
                new.append(NewLabel(row.sample_id, mask_path=rel))
        elif row.value is not None:
            old = current.get(row.sample_id)
            if old is not None and old.value == row.value:
                report.n_unchanged += 1
                continue
            report.n_replaced += old is not None
            new.append(NewLabel(row.sample_id, value=row.value))
        elif row.split is None:
            report.n_empty += 1
    if conflicts:
        raise BadRows(path, conflicts, kind=kind)
    for row in rows:  # copies under content-hash names: an orphan copy after a kill is harmless
        if row.mask_file is not None and region:
            from medactive.project.volumes import store_png

            store_png(store, crops[id(row)][1])
        elif row.mask_file is not None:
            store_mask_file(store, row.mask_file)
    moves = [(row.split, row.sample_id) for row in rows if row.split is not None]
    hook = _test_hook()
    who = annotator or f"import:{path.name}"
    with store.transaction() as tx:
        tx.executemany("UPDATE samples SET split = ? WHERE id = ?", moves)
        report.n_written = store.write_labels(new, annotator=who, source=source, tx=tx,
                                              row_hook=hook)
    for split, _ in moves:
        report.moved[split] = report.moved.get(split, 0) + 1
    logger.info("%s: %s", path, report.summary())
    return report
