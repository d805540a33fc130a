"""A project's image files: decode checks, missing files, exclusion and relocation.

Images are referenced by path under the project's image folder with a content hash (see
:mod:`medactive.project.store`), never copied. This module checks that those files are
usable and reports every bad file at once, never one at a time:

- :func:`decode_problems` decodes files fully (Pillow ``Image.load()`` for 2D images, the whole
  voxel array of a NIfTI volume or DICOM series): ``init`` refuses a folder with an unreadable
  file and ``status --verify`` reports one, instead of a query failing after a whole training.
- :func:`check_files_present` is the cheap pre-check of ``query``/``train``/``export``: every
  file exists, else one error listing the missing ones (and how to relocate).
- :func:`exclude_samples` leaves samples out of the project (``project exclude``), keeping
  their rows, labels and batch items.
- :func:`relocate` points the project at a moved image folder once every file's content hash
  matches (all or nothing).
"""

from __future__ import annotations

import csv
import getpass
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medactive.errors import ConfigError, DataError
from medactive.progress import progress as _progress
from medactive.project.store import ProjectStore, Sample, now_iso

logger = logging.getLogger(__name__)

#: how many file names an error message lists before it says how many more there are
MAX_LISTED = 20


def decode_file(path: Path) -> str | None:
    """Why ``path`` cannot be decoded in full, or None when it can.

    2D images (PNG, JPEG, TIFF) are decoded with Pillow (``Image.load()`` reads every pixel,
    so a truncated file fails here); NIfTI files and DICOM series folders are read whole.
    """
    from medactive.data.segmentation.png import is_image_file

    if not path.exists():
        return "missing"
    try:
        if path.is_dir() or not is_image_file(path):
            from medactive.data.segmentation.nifti import read_volume_file

            read_volume_file(path, mask=True)
        else:
            from PIL import Image

            with Image.open(path) as img:
                img.load()
    except Exception as exc:  # noqa: BLE001 - any failure to decode is what we report
        text = str(exc).replace(str(path), "").strip(" :") or type(exc).__name__
        return text.splitlines()[0]
    return None


def decode_problems(paths: Sequence[Path], *, root: Path, progress: bool = False,
                    desc: str = "decoding images") -> list[tuple[str, str]]:
    """``(path relative to root, reason)`` of every file of ``paths`` that cannot be decoded."""
    problems = []
    for path in _progress(list(paths), desc=desc, unit="file", enabled=progress):
        reason = decode_file(path)
        if reason is not None:
            problems.append((_rel(path, root), reason))
    return problems


def undecodable_error(problems: list[tuple[str, str]], *, n_files: int, root: Path,
                      hint: str) -> DataError:
    """One error listing every undecodable file (``problems`` from :func:`decode_problems`)."""
    lines = "\n".join(f"  {rel}: {reason}" for rel, reason in problems)
    return DataError(f"{root}: {len(problems)} of {n_files} image files cannot be decoded "
                     f"({hint}):\n{lines}")


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _listing(items: Sequence[str], *, prefix: str = "  ", more: str = "") -> str:
    shown = [f"{prefix}{x}" for x in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        shown.append(f"{prefix}... and {len(items) - MAX_LISTED} more{more}")
    return "\n".join(shown)


# -- the files a project needs -----------------------------------------------------------------
def project_files(store: ProjectStore, root: Path | None = None
                  ) -> tuple[dict[str, tuple[str, list[str]]], list[str]]:
    """The files the project reads from its image folder, relative to it.

    Returns:
        ``(hashed, extra)``: ``hashed`` maps each sample file (of the samples that are not
        excluded) to ``(stored sha256, [sample ids])``; ``extra`` lists the mask files of
        segmentation evaluation volumes, read from the folder at every training (no hash).
    """
    hashed: dict[str, tuple[str, list[str]]] = {}
    for s in store.samples():
        entry = hashed.setdefault(s.path, (s.sha256, []))
        entry[1].append(s.id)
    extra = []
    if store.task == "segmentation":
        excluded = store.excluded_ids()
        for vid, vol in store.get_meta("volumes", {}).items():
            if vol["split"] != "pool" and vol.get("mask") and vid not in excluded:
                extra.append(vol["mask"])
    return hashed, extra


def missing_files(store: ProjectStore) -> tuple[list[str], int]:
    """``(missing files relative to the image folder, number of files checked)``."""
    root = store.images_root
    hashed, extra = project_files(store)
    names = list(hashed) + extra
    return [rel for rel in names if not (root / rel).exists()], len(names)


def check_files_present(store: ProjectStore) -> int:
    """Raise one :class:`DataError` listing every missing image file; the number checked."""
    missing, n_files = missing_files(store)
    if missing:
        raise DataError(missing_message(store, missing, n_files))
    return n_files


def missing_message(store: ProjectStore, missing: Sequence[str], n_files: int) -> str:
    directory = store.directory
    return (f"{len(missing)} of {n_files} image files are missing under {store.images_root} "
            "(images are referenced, not copied):\n"
            + _listing(list(missing), more=f" (`medactive project status {directory} --verify` "
                       "lists all)")
            + f"\nif the folder moved: `medactive project relocate {directory} --images "
            f"NEW_FOLDER`; to go on without some samples: `medactive project exclude "
            f"{directory} IDS`")


def verify_files(store: ProjectStore, *, progress: bool = False) -> dict[str, Any]:
    """Check every file of the project: present, same content hash, decodable in full.

    Returns:
        ``{"missing_images": [ids], "changed_images": [ids], "unreadable_images":
        [{"id", "path", "reason"}], "missing_files": [paths], "changed_files": [paths],
        "n_files": int}`` (paths relative to the image folder).
    """
    from medactive.project.volumes import volume_sha256

    root = store.images_root
    hashed, extra = project_files(store)
    out: dict[str, Any] = {"missing_images": [], "changed_images": [], "unreadable_images": [],
                           "missing_files": [], "changed_files": [],
                           "n_files": len(hashed) + len(extra)}
    items = [(rel, digest, ids) for rel, (digest, ids) in hashed.items()]
    items += [(rel, None, []) for rel in extra]
    for rel, digest, ids in _progress(items, desc="verifying images", unit="file",
                                      enabled=progress):
        path = root / rel
        if not path.exists():
            out["missing_files"].append(rel)
            out["missing_images"] += ids
            continue
        if digest is not None and volume_sha256(path) != digest:
            out["changed_files"].append(rel)
            out["changed_images"] += ids
        reason = decode_file(path)
        if reason is not None:
            out["unreadable_images"] += [{"id": i, "path": rel, "reason": reason}
                                         for i in ids or [rel]]
    return out


# -- exclude ----------------------------------------------------------------------------------------
def read_ids(spec: str | Sequence[str]) -> tuple[list[str], str]:
    """Sample ids from ``spec`` and where they came from (for messages).

    ``spec`` is a list of ids, a comma-separated string of ids, or a file: a CSV whose header
    has an ``id`` column, else one id per line (blank lines and ``#`` comments skipped).
    """
    if not isinstance(spec, str):
        return [str(s).strip() for s in spec if str(s).strip()], "the given ids"
    path = Path(spec)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read the id list ({exc})") from exc
        lines = [ln.strip() for ln in text.splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith("#")]
        header = [h.strip().lower() for h in lines[0].split(",")] if lines else []
        if "id" in header:  # a CSV with an id column
            col = header.index("id")
            ids = []
            for row in csv.reader(lines[1:]):
                if len(row) > col and row[col].strip():
                    ids.append(row[col].strip())
            return ids, str(path)
        return lines, str(path)
    return [s.strip() for s in spec.split(",") if s.strip()], "the given ids"


def resolve_ids(store: ProjectStore, ids: Iterable[str], *, known: dict[str, Sample]
                ) -> tuple[list[str], list[str]]:
    """``(sample ids, unknown ids)``: a segmentation volume id stands for its slices."""
    found, unknown = [], []
    volumes = store.get_meta("volumes", {}) if store.task == "segmentation" else {}
    seen: set[str] = set()
    for sid in ids:
        if sid in known:
            hits = [sid]
        elif sid in volumes:
            hits = [k for k in known if k.startswith(sid + "/")]
        else:
            hits = []
        if not hits:
            unknown.append(sid)
        for h in hits:
            if h not in seen:
                seen.add(h)
                found.append(h)
    return found, unknown


def _unknown_error(source: str, unknown: list[str], what: str, nothing: str) -> ConfigError:
    shown = ", ".join(repr(u) for u in unknown[:10])
    more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
    return ConfigError(f"{source}: {len(unknown)} unknown id{'s' * (len(unknown) != 1)}: "
                       f"{shown}{more} (not {what}); nothing {nothing}")


def exclude_samples(store: ProjectStore, spec: str | Sequence[str], *, reason: str = "",
                    by: str | None = None, undo: bool = False) -> list[str]:
    """Leave samples out of the project (``undo``: bring excluded ones back), in one transaction.

    An excluded sample leaves the pool, the evaluation sets, queries, training and exports. Its
    ``samples`` row, its labels and its batch items stay: a pending batch item becomes
    ``skipped`` (so nobody is asked to label it), a labelled one keeps its label, which is
    simply no longer used. Every other sample, label, round and model is untouched.

    Args:
        store: the project.
        spec: ids (see :func:`read_ids`); a segmentation volume id stands for all its slices.
        reason: why (recorded).
        by: who (recorded; default the login name).
        undo: remove the exclusion of these samples instead.

    Returns:
        The ids newly excluded (or restored); ids already in that state are skipped.

    Raises:
        ConfigError: no ids, or an id that is not a sample of the project (all listed on one
            line; nothing is changed).
    """
    ids, source = read_ids(spec)
    if not ids:
        raise ConfigError(f"{source}: no sample ids given")
    current = store.excluded_ids()
    if undo:
        unknown = [i for i in ids if i not in current]
        if unknown:
            raise _unknown_error(source, unknown, "excluded samples", "restored")
        with store.transaction() as tx:
            tx.executemany("DELETE FROM excluded WHERE sample_id = ?", [(i,) for i in ids])
        return list(dict.fromkeys(ids))
    known = {s.id: s for s in store.samples(excluded=True)}
    found, unknown = resolve_ids(store, ids, known=known)
    if unknown:
        raise _unknown_error(source, unknown, "samples of the project", "excluded")
    new = [i for i in found if i not in current]
    who = by or _login()
    stamp = now_iso()
    with store.transaction() as tx:
        tx.executemany("INSERT INTO excluded(sample_id, reason, excluded_by, created_at) "
                       "VALUES (?,?,?,?)", [(i, reason, who, stamp) for i in new])
        # open batch items of excluded samples are closed, so no page or export offers them
        tx.executemany("UPDATE queries SET status = 'skipped', lease_annotator = NULL, "
                       "lease_expires = NULL WHERE sample_id = ? AND status != 'labelled'",
                       [(i,) for i in new])
    logger.info("excluded %d samples (%s)", len(new), reason or "no reason given")
    return new


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


# -- relocate ---------------------------------------------------------------------------------------
def relocate(store: ProjectStore, new_root: str | Path, *, progress: bool = False) -> int:
    """Point the project at ``new_root`` once every file there has its stored content hash.

    All or nothing: when any file (of a sample that is not excluded, or a segmentation
    evaluation mask) is missing or has other content, one :class:`DataError` lists them all
    and the project is not changed. The move is recorded in meta ``relocations``.

    Returns:
        The number of image files whose hash was checked.
    """
    from medactive.project.volumes import volume_sha256

    new = Path(new_root)
    if not new.is_dir():
        raise DataError(f"{new}: not a folder")
    new = new.resolve()
    hashed, extra = project_files(store)
    missing, changed = [], []
    for rel, (digest, _) in _progress(list(hashed.items()), desc="checking images",
                                      unit="file", enabled=progress):
        path = new / rel
        if not path.exists():
            missing.append(rel)
        elif volume_sha256(path) != digest:
            changed.append(rel)
    missing += [rel for rel in extra if not (new / rel).exists()]
    if missing or changed:
        n_files = len(hashed) + len(extra)
        listed = [f"missing: {m}" for m in missing] + [
            f"changed: {c} (content hash differs from the one stored at init)" for c in changed]
        raise DataError(f"{new}: cannot relocate the project there: {len(missing)} missing, "
                        f"{len(changed)} changed of {n_files} image files; nothing changed:\n"
                        + _listing(listed))
    old = str(store.images_root)
    history = list(store.get_meta("relocations", []) or [])
    history.append({"from": old, "to": str(new), "at": now_iso()})
    with store.transaction() as tx:
        store.set_meta({"images_root": str(new), "relocations": history}, tx=tx)
    logger.info("relocated %s: %s -> %s", store.directory, old, new)
    return len(hashed)
