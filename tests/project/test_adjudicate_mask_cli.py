"""``project adjudicate DIR --sample ID --mask FILE``: the adjudicator's edited mask from a file
(PNG, NIfTI or ``.npy``) settles a mask disagreement, checked like the page's edited mask
(``/api/adjudicate/{key}/mask``: the item's shape, class values ``0..C-1``) and stored by the
same :func:`medactive.project.adjudication.adjudicate` with method ``edited``. Bad input is one
line naming the file or argument, exit code != 0, and nothing stored changes.

The masks are the 8x8 hand-made ones of ``test_mask_adjudication``: alice marks rows 0-3,
columns 0-3, bob rows 0-3, columns 0-1 (Dice 2/3 < 0.8, a disagreement); the edited mask marks
rows 0-1, columns 0-3.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from medactive.cli import main
from medactive.project.readings import load_mask, training_labels
from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project, labeled_state, query, status

from .test_double_reading import _two_readers
from .test_mask_adjudication import N, masks_abc, read_twice, write_png_folder

pytest.importorskip("medactive.tasks.segmentation.task")


@pytest.fixture
def double_read(tmp_path):
    """A 2-reader segmentation project: ``disputed`` read as alice's and bob's masks (a
    disagreement), ``agreed`` read identically by both. Returns ``(store, {name: sid})``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = init_project(tmp_path / "proj", write_png_folder(tmp_path / "lesions"),
                             task="segmentation", preset="smoke", initial=2, readers=2)
    disputed, agreed = query(store, strategy="random", budget=2).sample_ids
    for name in ("alice", "bob"):
        store.add_annotator(name)
    read_twice(store, disputed, agreed)
    return store, {"disputed": disputed, "agreed": agreed}


def snapshot(store: ProjectStore) -> tuple:
    """Everything a decision may change: labels, adjudications and the files under masks/."""
    labels = [tuple(r) for r in store.execute("SELECT * FROM labels ORDER BY seq")]
    decided = [tuple(r) for r in store.execute("SELECT * FROM adjudications ORDER BY seq")]
    files = sorted(p.name for p in (store.directory / "masks").iterdir())
    return labels, decided, files


def cli(args: list[str]) -> int:
    """``medactive`` with ``args``; argparse's exit as its code."""
    try:
        return main(args)
    except SystemExit as exc:
        return int(exc.code or 0)


def write_png(path, mask: np.ndarray):
    Image.fromarray(mask.astype(np.uint8)).save(path)
    return path


# -- an edited mask from a file -----------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["png", "npy"])
def test_an_edited_mask_file_becomes_the_training_label(double_read, tmp_path, capsys, fmt):
    store, ids = double_read
    _, _, e = masks_abc()
    sid = ids["disputed"]
    file = tmp_path / f"edited.{fmt}"
    if fmt == "png":
        write_png(file, e)
    else:
        np.save(file, e.astype(np.int64))  # any integer dtype of the item's shape
    labels_before = snapshot(store)[0]
    assert cli(["project", "adjudicate", str(store.directory), "--sample", sid,
                "--mask", str(file), "--by", "dana"]) == 0, capsys.readouterr().err
    assert "recorded 1 decision" in capsys.readouterr().out
    made = training_labels(store)[sid]
    assert made.rule == "adjudicated" and np.array_equal(load_mask(store, made.mask_path), e)
    assert labeled_state(store).labels[sid] == made.mask_path  # what training uses
    (row,) = [dict(r) for r in store.execute("SELECT * FROM adjudications WHERE sample_id = ?",
                                             (sid,))]
    assert (row["adjudicator"], row["method"], row["reader"]) == ("dana", "edited", None)
    assert snapshot(store)[0] == labels_before  # both readings kept, untouched
    readers = sorted(lab.annotator for lab in store.label_history(sid))
    assert readers == ["alice", "bob"]
    assert status(store)["agreement"]["open_disagreements"] == 0
    assert store.integrity_check() == "ok"


def test_start_names_the_reader_the_edit_started_from(double_read, tmp_path):
    store, ids = double_read
    file = write_png(tmp_path / "edited.png", masks_abc()[2])
    assert cli(["project", "adjudicate", str(store.directory), "--sample", ids["disputed"],
                "--mask", str(file), "--start", "bob", "--by", "dana"]) == 0
    row = dict(store.execute("SELECT * FROM adjudications")[0])
    assert (row["method"], row["reader"]) == ("edited", "bob")


# -- bad input: one line naming the file or argument, nothing stored changes -------------------
def _file(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif name.endswith(".npy"):
        np.save(path, content)
    else:
        write_png(path, content)
    return path


BAD = [
    # (file name, content or None for a missing file, extra args, words in the one line)
    ("missing.png", None, [], ["--mask", "missing.png", "not found"]),
    ("corrupt.png", b"\x89PNG\r\n\x1a\n not really", [], ["--mask", "corrupt.png",
                                                          "not a readable mask"]),
    ("corrupt.npy", b"not a numpy file", [], ["--mask", "corrupt.npy", "not a readable"]),
    ("narrow.png", np.zeros((N, N - 1), np.uint8), [], ["--mask", "narrow.png", "(8, 7)",
                                                        "(8, 8)"]),
    ("cube.npy", np.zeros((2, N, N), np.uint8), [], ["--mask", "cube.npy", "(2, 8, 8)"]),
    # classes are 0 (background) and 1 (lesion)
    ("class2.png", np.full((N, N), 2, np.uint8), [], ["--mask", "class2.png", "0..1"]),
    ("half.npy", np.full((N, N), 0.5), [], ["--mask", "half.npy", "0..1"]),
    ("negative.npy", np.full((N, N), -1, np.int16), [], ["--mask", "negative.npy", "0..1"]),
    ("mask.txt", b"0 1\n", [], ["--mask", "mask.txt", "not a mask file", ".npy"]),
    ("edited.png", "ok", ["--start", "carol"], ["--start", "'carol' is not a reader"]),
    ("edited.png", "ok", ["--reader", "alice"], ["--mask", "not both"]),
]


@pytest.mark.parametrize(("name", "content", "extra", "words"), BAD,
                         ids=[b[0].split(".")[0] + ("-" + b[2][0][2:] if b[2] else "")
                              for b in BAD])
def test_bad_mask_files_are_refused_and_change_nothing(double_read, tmp_path, capsys, name,
                                                       content, extra, words):
    store, ids = double_read
    if content is None:
        file = tmp_path / name
    else:
        file = _file(tmp_path, name, masks_abc()[2] if isinstance(content, str) else content)
    before = snapshot(store)
    code = cli(["project", "adjudicate", str(store.directory), "--sample", ids["disputed"],
                "--mask", str(file), *extra])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    assert snapshot(store) == before
    assert store.integrity_check() == "ok"


def test_a_sample_without_a_mask_disagreement_is_refused(double_read, tmp_path, capsys):
    store, ids = double_read
    file = write_png(tmp_path / "edited.png", masks_abc()[2])
    before = snapshot(store)
    for sid, words in ((ids["agreed"], ["--sample", "not a disagreement", "readers agree"]),
                       ("nope", ["--sample", "unknown sample id 'nope'"])):
        assert cli(["project", "adjudicate", str(store.directory), "--sample", sid,
                    "--mask", str(file)]) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert cli(["project", "adjudicate", str(store.directory), "--mask", str(file)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--mask" in err and "--sample ID" in err, err
    assert snapshot(store) == before
    assert store.integrity_check() == "ok"


def test_a_class_project_takes_no_mask(tmp_path, capsys):
    store, ids = _two_readers(tmp_path)  # classification, ids[1] is a disagreement
    file = write_png(tmp_path / "edited.png", np.zeros((8, 8), np.uint8))
    before = snapshot(store) if (store.directory / "masks").is_dir() else None
    labels = [tuple(r) for r in store.execute("SELECT * FROM labels ORDER BY seq")]
    assert cli(["project", "adjudicate", str(store.directory), "--sample", ids[1],
                "--mask", str(file)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--mask" in err and "classes" in err, err
    assert [tuple(r) for r in store.execute("SELECT * FROM labels ORDER BY seq")] == labels
    assert store.execute("SELECT COUNT(*) FROM adjudications")[0][0] == 0
    if before is not None:
        assert snapshot(store) == before
    assert store.integrity_check() == "ok"


def test_help_names_the_mask_option(capsys):
    assert cli(["project", "adjudicate", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--mask FILE" in out and ".npy" in out and "--start" in out
