"""``project import``: every bad row listed with its line, all or nothing, idempotent reruns."""

from __future__ import annotations

import pytest

from medactive.errors import DataError
from medactive.project.importer import BadRows, import_labels
from medactive.project.workflow import init_project

from .conftest import write_csv


def test_import_writes_labels(project, tmp_path):
    csv = write_csv(tmp_path / "l.csv", [("case0001", "b"), ("site2/case0004", "a")])
    report = import_labels(project, csv)
    assert report.n_written == 2
    labels = project.current_labels()
    assert labels["case0001"].value == 1 and labels["site2/case0004"].value == 0
    assert labels["case0001"].source == "import"
    assert labels["case0001"].annotator == "import:l.csv"


def test_every_bad_row_is_listed_and_nothing_written(project, tmp_path):
    csv = write_csv(tmp_path / "bad.csv", [
        ("case0001", "a"),          # line 2: fine
        ("nosuch", "a"),            # line 3: unknown id
        ("case0002", "c"),          # line 4: class not in the project
        ("case0001", "b"),          # line 5: duplicate id
        ("case0003", "b"),          # line 6: fine
        ("", "a"),                  # line 7: empty id
    ])
    with pytest.raises(BadRows) as info:
        import_labels(project, csv)
    assert [line for line, _ in info.value.problems] == [3, 4, 5, 7]
    text = str(info.value)
    assert "line 3: unknown id 'nosuch'" in text
    assert "line 4: class 'c' is not in the project" in text
    assert "line 5: duplicate id 'case0001' (first on line 2)" in text
    assert "nothing imported" in text
    assert project.current_labels() == {}


def test_rerun_is_idempotent_and_conflicts_need_overwrite(project, tmp_path):
    csv = write_csv(tmp_path / "l.csv", [("case0001", "a")])
    assert import_labels(project, csv).n_written == 1
    again = import_labels(project, csv)
    assert (again.n_written, again.n_unchanged) == (0, 1)
    other = write_csv(tmp_path / "o.csv", [("case0001", "b")])
    with pytest.raises(BadRows, match="already labelled 'a'.*--overwrite"):
        import_labels(project, other)
    assert import_labels(project, other, overwrite=True).n_replaced == 1
    assert [l.value for l in project.label_history("case0001")] == [0, 1]


def test_empty_labels_are_skipped(project, tmp_path):
    csv = write_csv(tmp_path / "l.csv", [("case0001", "a"), ("case0002", "")])
    report = import_labels(project, csv)
    assert (report.n_written, report.n_empty) == (1, 1)


def test_path_column_and_split(project, tmp_path):
    csv = write_csv(tmp_path / "l.csv", [("site2/case0004.png", "a", "val"),
                                          ("case0005.png", "b", "test"),
                                          ("case0006.png", "", "val")],
                    header=("path", "label", "split"))
    report = import_labels(project, csv)
    assert report.moved == {"val": 2, "test": 1}
    assert {s.id for s in project.samples("val")} == {"site2/case0004", "case0006"}
    assert len(project.pool_ids()) == 9


def test_labelled_pool_sample_cannot_move_to_val(project, tmp_path):
    import_labels(project, write_csv(tmp_path / "a.csv", [("case0001", "a")]))
    csv = write_csv(tmp_path / "b.csv", [("case0001", "a", "val"), ("case0002", "a", "nope")],
                    header=("id", "label", "split"))
    with pytest.raises(BadRows) as info:
        import_labels(project, csv)
    assert [line for line, _ in info.value.problems] == [2, 3]


def test_missing_columns(project, tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("name,value\ncase0001,a\n")
    with pytest.raises(DataError, match="needs the columns 'id'"):
        import_labels(project, csv)


def test_init_with_labels_and_splits(tmp_path, image_folder):
    root, _ = image_folder
    csv = write_csv(tmp_path / "init.csv", [("case0001", "b", "val"), ("case0002", "a", "test"),
                                             ("case0003", "b", "")],
                    header=("id", "label", "split"))
    store = init_project(tmp_path / "p", root, classes=["a", "b"], labels=csv)
    labels = store.current_labels()
    assert {k: (v.value, v.source) for k, v in labels.items()} == {
        "case0001": (1, "initial"), "case0002": (0, "initial"), "case0003": (1, "initial")}
    assert store.counts()["samples"] == {"pool": 10, "val": 1, "test": 1}


def test_init_refuses_bad_labels_and_leaves_no_project(tmp_path, image_folder):
    root, _ = image_folder
    csv = write_csv(tmp_path / "init.csv", [("case0001", "z")])
    with pytest.raises(BadRows, match="line 2: class 'z'"):
        init_project(tmp_path / "p", root, classes=["a", "b"], labels=csv)
    assert not (tmp_path / "p" / "project.db").exists()
