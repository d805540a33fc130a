"""Image files of a project: decoded at init and verify, excluded, relocated, missing at once."""

from __future__ import annotations

import json
import shutil

import pytest

from medactive.cli import main
from medactive.errors import ConfigError, DataError
from medactive.project.exporter import export_batch
from medactive.project.integrity import exclude_samples, relocate
from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project, labeled_state, query, status

from .conftest import write_csv, write_folder


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _label(store, ids, tmp_path, name="labels.csv"):
    from medactive.project.importer import import_labels

    return import_labels(store, write_csv(tmp_path / name,
                                          [(i, "ab"[store.truth[i]]) for i in ids]))


# -- item 3: decode at init and verify -------------------------------------------------------------
def test_init_lists_every_undecodable_image_and_creates_nothing(tmp_path, image_folder, capsys):
    root, _ = image_folder
    _truncate(root / "case0001.png")
    _truncate(root / "site2" / "case0004.png")
    proj = tmp_path / "p"
    assert main(["project", "init", str(proj), "--images", str(root), "--classes",
                 "a,b"]) == 2
    err = capsys.readouterr().err
    assert "2 of 12 image files cannot be decoded" in err
    assert "case0001.png" in err and "site2/case0004.png" in err and "Traceback" not in err
    assert "--exclude" in err
    assert not (proj / "project.db").exists() or not ProjectStore(proj).get_meta("task")


def test_init_exclude_leaves_bad_images_out(tmp_path, image_folder):
    root, _ = image_folder
    _truncate(root / "case0001.png")
    store = init_project(tmp_path / "p", root, classes=["a", "b"], exclude="case0001",
                         excluded_by="tester")
    assert "case0001" not in store.pool_ids() and len(store.pool_ids()) == 11
    [row] = store.excluded()
    assert row["sample_id"] == "case0001" and row["excluded_by"] == "tester"


def test_init_decodes_volumes(tmp_path, seg_folder):
    _truncate(seg_folder / "images" / "case1.nii.gz")
    _truncate(seg_folder / "images" / "case2.nii.gz")
    with pytest.raises(DataError, match="2 of 8 image files cannot be decoded") as err:
        init_project(tmp_path / "p", seg_folder, task="segmentation", preset="smoke")
    assert "images/case1.nii.gz" in str(err.value) and "images/case2.nii.gz" in str(err.value)


def test_verify_decodes_and_fails_on_a_truncated_image(project, capsys):
    _truncate(project.images_root / "case0003.png")
    assert main(["project", "status", str(project.directory), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "cannot be decoded: 1" in out and "case0003" in out
    assert "integrity: ok" not in out and "integrity: FAILED" in out
    assert main(["project", "status", str(project.directory), "--verify", "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert [u["id"] for u in info["unreadable_images"]] == ["case0003"]
    assert info["changed_images"] == ["case0003"]


# -- item 3: exclude ---------------------------------------------------------------------------
def test_exclude_then_query_leaves_the_sample_out(project, capsys):
    _truncate(project.images_root / "case0003.png")
    assert main(["project", "exclude", str(project.directory), "case0003", "--reason",
                 "truncated file"]) == 0
    assert "excluded 1 sample" in capsys.readouterr().out
    assert main(["project", "status", str(project.directory), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "excluded: 1 (case0003: truncated file)" in out and "pool 11" in out
    assert "integrity: ok" in out
    batch = query(project, strategy="random", budget=3, initial=11)
    assert len(batch.sample_ids) == 11 and "case0003" not in batch.sample_ids


def test_exclude_unknown_id_is_one_line_and_changes_nothing(project, tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_text("case0001\nghost\ncase0002\nnope\n")
    assert main(["project", "exclude", str(project.directory), str(ids)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2 unknown ids: 'ghost', 'nope'" in err
    assert "nothing excluded" in err
    assert project.excluded() == [] and len(project.pool_ids()) == 12


def test_exclude_reads_csv_id_column_and_comma_lists(project, tmp_path):
    csv_file = write_csv(tmp_path / "bad.csv", [("case0001", "x"), ("case0002", "y")],
                         header=("id", "note"))
    assert exclude_samples(project, str(csv_file), by="me") == ["case0001", "case0002"]
    assert exclude_samples(project, "case0005,case0006") == ["case0005", "case0006"]
    assert exclude_samples(project, "case0005") == []  # already excluded: nothing new
    assert len(project.pool_ids()) == 8
    assert exclude_samples(project, "case0005", undo=True) == ["case0005"]
    assert len(project.pool_ids()) == 9


def test_excluding_a_labelled_and_a_pending_sample_keeps_everything_else(project, tmp_path):
    b0 = query(project, strategy="random", budget=4)
    _label(project, b0.sample_ids[:3], tmp_path)
    labelled, pending = b0.sample_ids[0], b0.sample_ids[3]
    exclude_samples(project, f"{labelled},{pending}", reason="bad scan")
    # the label row and the batch stay; the sample no longer counts
    assert len(project.label_history(labelled)) == 1
    assert [q.sample_id for q in project.batch(0)] == b0.sample_ids
    assert project.queries("pending") == []
    state = labeled_state(project)
    assert len(state.labeled_idx) == 2 and labelled not in state.pool_ids
    assert project.counts()["labelled"]["pool"] == 2
    with pytest.raises(ConfigError, match="nothing pending"):  # the rest is labelled
        export_batch(project, out=tmp_path / "x.csv", include_skipped=True)
    info = status(project)
    assert info["samples"]["pool"] == 10 and len(info["excluded"]) == 2


def test_import_of_an_excluded_sample_is_refused(project, tmp_path):
    from medactive.project.importer import BadRows, import_labels

    exclude_samples(project, "case0001")
    with pytest.raises(BadRows, match="'case0001' is excluded"):
        import_labels(project, write_csv(tmp_path / "l.csv", [("case0001", "b")]))


@pytest.mark.slow
def test_exclude_a_truncated_image_then_query_trains(project, tmp_path):
    b0 = query(project, strategy="random", budget=3)
    _label(project, b0.sample_ids, tmp_path)
    bad = next(s for s in project.pool_ids() if s not in b0.sample_ids)
    _truncate(project.images_root / f"{bad}.png")
    exclude_samples(project, bad)
    nxt = query(project, strategy="entropy", budget=3)
    assert nxt.round == 1 and bad not in nxt.sample_ids


# -- item 4: missing files and relocate ---------------------------------------------------------
def test_moved_folder_query_and_train_list_every_missing_file(project, tmp_path, capsys):
    b0 = query(project, strategy="random", budget=4)
    _label(project, b0.sample_ids, tmp_path)
    moved = tmp_path / "moved"
    shutil.move(project.images_root, moved)
    for argv in (["query", "--strategy", "random", "--budget", "2"], ["train"]):
        assert main(["project", argv[0], str(project.directory), *argv[1:]]) == 2
        err = capsys.readouterr().err
        assert "12 of 12 image files are missing" in err and "Traceback" not in err
        assert "case0001.png" in err and "site2/case0008.png" in err
        assert "medactive project relocate" in err
    assert main(["project", "status", str(project.directory), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "missing images: 12" in out and "integrity: ok" not in out
    assert main(["project", "status", str(project.directory)]) == 1


def test_relocate_checks_every_hash_all_or_nothing(project, tmp_path, capsys):
    old_root = project.images_root
    new = tmp_path / "new"
    shutil.copytree(old_root, new)
    (new / "case0001.png").unlink()
    (new / "case0002.png").unlink()
    _truncate(new / "case0003.png")
    assert main(["project", "relocate", str(project.directory), "--images", str(new)]) == 2
    err = capsys.readouterr().err
    assert "2 missing, 1 changed" in err and "nothing changed" in err
    assert "case0001.png" in err and "case0002.png" in err and "case0003.png" in err
    assert ProjectStore(project.directory).images_root == old_root

    fixed = tmp_path / "fixed"
    shutil.copytree(old_root, fixed)
    shutil.rmtree(old_root)
    assert main(["project", "relocate", str(project.directory), "--images", str(fixed)]) == 0
    assert "12 image files checked" in capsys.readouterr().out
    store = ProjectStore(project.directory)
    assert store.images_root == fixed.resolve()
    assert store.get_meta("relocations")[0]["from"] == str(old_root)
    assert main(["project", "status", str(store.directory), "--verify"]) == 0
    assert "integrity: ok" in capsys.readouterr().out


def test_relocate_of_a_segmentation_project(tmp_path, seg_folder):
    store = init_project(tmp_path / "p", seg_folder, task="segmentation", preset="smoke")
    new = tmp_path / "vols2"
    shutil.copytree(seg_folder, new)
    (new / "masks" / "case3.nii.gz").unlink()  # an evaluation mask, read from the folder
    with pytest.raises(DataError, match="1 missing"):
        relocate(store, new)
    shutil.copy(seg_folder / "masks" / "case3.nii.gz", new / "masks" / "case3.nii.gz")
    assert relocate(store, new) == 5
    assert store.images_root == new.resolve()


# -- item 6: --initial --------------------------------------------------------------------------------
def test_initial_must_be_positive_and_fit_the_pool(project, tmp_path, image_folder, capsys):
    for value in ("0", "-2"):
        assert main(["project", "query", str(project.directory), "--strategy", "random",
                     "--budget", "3", "--initial", value]) == 2
        assert f"--initial must be at least 1, got {value}" in capsys.readouterr().err
    assert project.rounds() == []
    root, _ = image_folder
    for value, text in (("0", "at least 1"), ("-1", "at least 1"),
                        ("13", "--initial=13 is larger than the pool of 12 samples")):
        assert main(["project", "init", str(tmp_path / f"q{value}"), "--images", str(root),
                     "--classes", "a,b", "--initial", value]) == 2
        assert text in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--initial=13 is larger than the pool of 12 samples"):
        query(project, strategy="random", budget=3, initial=13)
    with pytest.raises(ConfigError, match="--budget must be at least 1, got 0"):
        query(project, strategy="random", budget=0)


# -- item 7: progress when the output is not a terminal --------------------------------------------
@pytest.mark.slow
def test_query_and_train_report_progress_when_not_a_terminal(tmp_path, capsys):
    images = tmp_path / "images"
    truth = write_folder(images, n=12)
    proj = tmp_path / "p"
    assert main(["project", "init", str(proj), "--images", str(images), "--classes", "a,b",
                 "--preset", "smoke", "--initial", "4"]) == 0
    err = capsys.readouterr().err
    assert "decoding images: 12/12 (100%)" in err
    assert main(["project", "query", str(proj), "--strategy", "random", "--budget", "3"]) == 0
    store = ProjectStore(proj)
    ids = [q.sample_id for q in store.batch(0)]
    labels = write_csv(tmp_path / "l.csv", [(i, "ab"[truth[i]]) for i in ids])
    assert main(["project", "import", str(proj), str(labels)]) == 0
    capsys.readouterr()
    assert main(["project", "train", str(proj), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "train: checking 12 image files" in err
    assert "train: training the round-0 model on 4 labels" in err
    assert main(["project", "query", str(proj), "--strategy", "entropy", "--budget", "3",
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "query: checking 12 image files" in err
    assert "query: round-0 model up to date (4 labels)" in err
    assert "scoring the pool: 8/8 (100%) samples" in err
    assert "scoring the pool (" not in err  # one bar per field: the project's, not the task's too
    assert "query: selecting 3 of 8 samples with entropy" in err


def test_export_lists_every_missing_file_of_the_batch(project, tmp_path):
    query(project, strategy="random", budget=3)  # the initial batch: 4 samples
    shutil.move(project.images_root, tmp_path / "moved")
    with pytest.raises(DataError, match="4 of 4 image files are missing") as err:
        export_batch(project, out=tmp_path / "batch.csv")
    assert "medactive project relocate" in str(err.value)
    assert not (tmp_path / "batch.csv").exists()
