"""``project init --encoder``: rounds of a labelling project start from (or train a head on)
a pretrained encoder, as ``medactive run --encoder`` does (issue 10)."""

from __future__ import annotations

import pytest

from medactive.cli import main
from medactive.project.store import NewLabel, ProjectStore
from medactive.project.workflow import build_project_task, init_project, query
from tests.tasks.classification.test_task_modes import write_tiny_encoder


@pytest.fixture
def encoder_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDACTIVE_CACHE", str(tmp_path / "cache"))
    return write_tiny_encoder(tmp_path / "enc.pt")


def test_init_stores_the_encoder_and_the_task_uses_it(tmp_path, image_folder, encoder_file):
    root, _ = image_folder
    store = init_project(tmp_path / "p", root, classes=["a", "b"], preset="smoke",
                         encoder=str(encoder_file), train_mode="frozen")
    meta = store.meta()
    assert meta["encoder"] == str(encoder_file.resolve()) and meta["train_mode"] == "frozen"
    task, _ = build_project_task(ProjectStore(tmp_path / "p"))
    assert task.inner.train_mode == "frozen" and task.inner.encoder is not None


@pytest.mark.slow
def test_frozen_project_query_trains_a_head_and_stores_a_batch(tmp_path, image_folder,
                                                               encoder_file):
    root, truth = image_folder
    store = init_project(tmp_path / "p", root, classes=["a", "b"], preset="smoke", initial=4,
                         encoder=str(encoder_file), train_mode="frozen")
    first = query(store, strategy="random", budget=4)
    for sid in first.sample_ids:
        store.add_label(NewLabel(sid, value=truth[sid]), annotator="alice")
    second = query(store, strategy="margin", budget=2)
    assert len(second.sample_ids) == 2 and not set(second.sample_ids) & set(first.sample_ids)
    # the round-1 head was saved, and a later command loads it back as a head (not a CNN)
    (checkpoint,) = (tmp_path / "p" / "models").glob("*.pt")
    task, _ = build_project_task(ProjectStore(tmp_path / "p"))
    head = task._load(checkpoint)
    assert head.backbone.out_features == task.inner.encoder.out_features
    # a head on cached embeddings: the pool was embedded once, into the cache
    assert any((tmp_path / "cache").rglob("*"))


@pytest.mark.parametrize("extra, message", [
    (["--train-mode", "frozen"], "need --encoder"),
    (["--encoder", "missing.pt"], "missing.pt"),
])
def test_init_encoder_mistakes_are_one_line(tmp_path, image_folder, capsys, extra, message):
    root, _ = image_folder
    code = main(["project", "init", str(tmp_path / "p"), "--images", str(root),
                 "--classes", "a,b", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and "Traceback" not in "".join(err)
    assert not (tmp_path / "p" / "project.db").exists()


def test_segmentation_project_refuses_an_encoder(tmp_path, seg_folder, encoder_file, capsys):
    code = main(["project", "init", str(tmp_path / "p"), "--images", str(seg_folder),
                 "--task", "segmentation", "--classes", "bg,fg", "--encoder",
                 str(encoder_file)])
    assert code == 2 and "classification projects" in capsys.readouterr().err
