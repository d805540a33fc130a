"""Label Studio interchange: brush RLE against a hand-decoded stream, export -> import round
trips (classes, brush and polygon masks), malformed exports refused whole, SIGKILL mid-import."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from medactive.cli import main
from medactive.data.segmentation.masks import read_slice_mask
from medactive.project.brush_rle import decode, encode, mask_to_rle, rle_to_mask
from medactive.project.importer import DELAY_ENV, MARK_ENV, BadRows, import_labels
from medactive.project.label_studio import (
    export_label_studio,
    import_label_studio,
    mask_results,
)
from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project, query, train

from .conftest import SEG_H, SEG_W, seg_volume, write_csv, write_folder
from .killing import run_cli, sigkill, start_cli, wait_for_row

# -- brush RLE ---------------------------------------------------------------------------------
# the 1 x 2 mask [[0, 1]] as RGBA values 0,0,0,0, 255,255,255,255, coded by hand:
HAND_BITS = ("00000000000000000000000000001000"  # num = 8 values
             "00111"                             # word size - 1 = 7 (8-bit values)
             "0010" "0011" "0111" "1111"         # rle sizes - 1: 3, 4, 8, 16 bits
             "1" "00" "011" "00000000"           # repeat, size #0 (3 bits), n - 1 = 3: 4 x 0
             "1" "00" "011" "11111111"           # repeat, 4 x 255
             "0000000")                          # padding to whole bytes
HAND_BYTES = [int(HAND_BITS[i:i + 8], 2) for i in range(0, len(HAND_BITS), 8)]


def test_brush_rle_matches_a_hand_decoded_stream():
    assert len(HAND_BITS) % 8 == 0
    assert decode(HAND_BYTES).tolist() == [0, 0, 0, 0, 255, 255, 255, 255]
    assert encode(np.array([0, 0, 0, 0, 255, 255, 255, 255])) == HAND_BYTES
    assert mask_to_rle(np.array([[False, True]])) == HAND_BYTES
    assert rle_to_mask(HAND_BYTES, 1, 2).tolist() == [[False, True]]


def test_brush_rle_literal_blocks_and_long_runs():
    # a literal block of 3 values (flag 0, size #0, n - 1 = 2) then a repeat of 5 x 7
    bits = (f"{8:032b}" "00111" "0010" "0011" "0111" "1111"
            "0" "00" "010" f"{1:08b}{2:08b}{3:08b}" "1" "00" "100" f"{7:08b}")
    bits += "0" * (-len(bits) % 8)
    assert decode([int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)]).tolist() == [
        1, 2, 3, 7, 7, 7, 7, 7]
    values = np.zeros(70000 * 4 + 3, dtype=np.uint8)  # a run longer than 2**16 is split
    values[-3:] = [5, 6, 5]
    assert decode(encode(values)).tolist() == values.tolist()
    with pytest.raises(Exception, match="expected 2 x 2 x 4"):
        rle_to_mask(HAND_BYTES, 2, 2)
    with pytest.raises(Exception, match="truncated"):
        decode(HAND_BYTES[:8])


# -- classification ----------------------------------------------------------------------------
def _annotate(tasks: list[dict], results_of) -> list[dict]:
    """What Label Studio's JSON export adds: ids and one submitted annotation per task."""
    out = []
    for n, task in enumerate(tasks, start=1):
        results = results_of(task["data"]["medactive_id"])
        out.append({**task, "id": 100 + n, "annotations": [
            {"id": 500 + n, "completed_by": 1, "was_cancelled": False, "result": results,
             "created_at": "2026-12-03T10:00:00Z", "updated_at": "2026-12-03T10:00:00Z"}]})
    return out


def _choice(name: str) -> list[dict]:
    return [{"from_name": "label", "to_name": "image", "type": "choices",
             "value": {"choices": [name]}}]


def _label_rows(store: ProjectStore) -> list[tuple]:
    return [tuple(r) for r in store.execute("SELECT * FROM labels ORDER BY seq")]


def test_classification_export_import_round_trip(project, tmp_path):
    batch = query(project, strategy="random", budget=4).sample_ids
    out = tmp_path / "ls" / "tasks.json"
    result = export_label_studio(project, out)
    assert result.n_samples == 4 and out.with_suffix(".xml").is_file()
    tasks = json.loads(out.read_text())
    assert [t["data"]["medactive_id"] for t in tasks] == batch
    first = project.sample(batch[0])
    assert tasks[0]["data"]["image"] == str(project.sample_path(first))
    assert all("predictions" not in t for t in tasks)  # no model yet
    assert '<Choice value="a"/>' in out.with_suffix(".xml").read_text()

    exported = _annotate(tasks, lambda sid: _choice("ab"[project.truth[sid]]))
    done = tmp_path / "export.json"
    done.write_text(json.dumps(exported))
    report = import_label_studio(project, done, annotator="alice")
    assert report.n_written == 4
    labels = project.current_labels()
    assert {sid: labels[sid].value for sid in batch} == {sid: project.truth[sid] for sid in batch}
    assert {labels[sid].annotator for sid in batch} == {"alice"}
    assert all(q.status == "labelled" for q in project.batch(0))
    assert import_label_studio(project, done).n_unchanged == 4  # a second time writes nothing


def test_image_root_prefix_and_cancelled_or_missing_annotations(project, tmp_path):
    batch = query(project, strategy="random", budget=4).sample_ids
    out = tmp_path / "tasks.json"
    export_label_studio(project, out, image_root="/data/local-files/?d=scans/")
    tasks = json.loads(out.read_text())
    paths = {s.id: s.path for s in project.samples()}
    assert [t["data"]["image"] for t in tasks] == [
        f"/data/local-files/?d=scans/{paths[sid]}" for sid in batch]
    exported = _annotate(tasks, lambda sid: _choice("ab"[project.truth[sid]]))
    exported[0]["annotations"][0]["was_cancelled"] = True  # cancelled: no label
    exported[1]["annotations"] = []                         # not labelled yet
    # two annotations: the most recently updated one counts
    exported[2]["annotations"].append({**exported[2]["annotations"][0], "id": 999,
                                       "updated_at": "2026-12-03T11:00:00Z",
                                       "result": _choice("ab"[1 - project.truth[batch[2]]])})
    (tmp_path / "e.json").write_text(json.dumps(exported))
    report = import_label_studio(project, tmp_path / "e.json")
    assert (report.n_written, report.n_empty) == (2, 2)
    labels = project.current_labels()
    assert batch[0] not in labels and batch[1] not in labels
    assert labels[batch[2]].value == 1 - project.truth[batch[2]]
    assert labels[batch[3]].annotator == "import:e.json"


def test_malformed_export_refused_whole_store_unchanged(project, tmp_path, capsys):
    query(project, strategy="random", budget=4)
    export_label_studio(project, tmp_path / "tasks.json")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    exported = _annotate(tasks, lambda sid: _choice("ab"[project.truth[sid]]))
    exported[1]["data"]["medactive_id"] = "nope"             # unknown task id
    exported[2]["annotations"][0]["result"] = _choice("c")   # a class the project lacks
    del exported[3]["data"]["medactive_id"]                 # not one of our tasks
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(exported))
    before = _label_rows(project)
    with pytest.raises(BadRows) as info:
        import_label_studio(project, bad)
    text = str(info.value)
    assert text.splitlines()[0] == f"{bad}: 3 bad rows, nothing imported:"
    assert "  task 2: unknown id 'nope' (not a sample of the project)" in text.splitlines()
    assert "  task 3: class 'c' is not in the project (classes: a, b)" in text.splitlines()
    assert text.splitlines()[3].startswith("  task 4: no data.medactive_id")
    assert _label_rows(project) == before  # task 1 is fine, and still nothing was written

    assert main(["project", "import", str(project.directory), str(bad)]) != 0
    err = capsys.readouterr().err
    assert "task 2: unknown id 'nope'" in err and "Traceback" not in err
    assert _label_rows(project) == before
    (tmp_path / "junk.json").write_text("{not json")
    assert main(["project", "import", str(project.directory), str(tmp_path / "junk.json")]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not a Label Studio JSON export" in err


def test_overwrite_rules_as_the_csv_import(project, tmp_path):
    batch = query(project, strategy="random", budget=4).sample_ids
    export_label_studio(project, tmp_path / "tasks.json")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    import_labels(project, write_csv(tmp_path / "l.csv", [(batch[0], "a")]))
    exported = _annotate(tasks, lambda sid: _choice("b"))
    (tmp_path / "e.json").write_text(json.dumps(exported))
    with pytest.raises(BadRows, match=r"task 1: '.*' is already labelled 'a'.*--overwrite"):
        import_label_studio(project, tmp_path / "e.json")
    assert import_label_studio(project, tmp_path / "e.json", overwrite=True).n_replaced == 1


@pytest.mark.slow
def test_predictions_are_the_latest_models_pre_annotations(project, tmp_path):
    batch0 = query(project, strategy="random", budget=4).sample_ids
    import_labels(project, write_csv(tmp_path / "l.csv",
                                     [(i, "ab"[project.truth[i]]) for i in batch0]))
    train(project)
    query(project, strategy="margin", budget=3)
    out = tmp_path / "tasks.json"
    export_label_studio(project, out)
    tasks = json.loads(out.read_text())
    assert len(tasks) == 3
    for task in tasks:
        (pred,) = task["predictions"]
        assert pred["model_version"].startswith("round 0 (models/")
        assert 0.5 <= pred["score"] <= 1.0  # the top class of two
        assert pred["result"][0]["value"]["choices"][0] in ("a", "b")
    # accepting every prediction in Label Studio imports the predicted classes
    exported = [{**t, "annotations": [{"result": t["predictions"][0]["result"]}]}
                for t in tasks]
    (tmp_path / "e.json").write_text(json.dumps(exported))
    import_label_studio(project, tmp_path / "e.json")
    labels = project.current_labels()
    for t in tasks:
        name = t["predictions"][0]["result"][0]["value"]["choices"][0]
        assert labels[t["data"]["medactive_id"]].value == "ab".index(name)


# -- segmentation ------------------------------------------------------------------------------
@pytest.fixture
def seg_project(tmp_path, seg_folder):
    store = init_project(tmp_path / "segproj", seg_folder, task="segmentation", preset="smoke",
                         initial=3)
    return store


def _truth_mask(sid: str) -> np.ndarray:
    vol, k = sid.rsplit("/", 1)
    return seg_volume(int(vol.removeprefix("case")))[1][int(k)]


def _polygon(points_px: list[tuple[float, float]], name: str, h: int, w: int) -> dict:
    return {"from_name": "polygon", "to_name": "image", "type": "polygonlabels",
            "original_width": w, "original_height": h,
            "value": {"points": [[100 * x / w, 100 * y / h] for x, y in points_px],
                      "polygonlabels": [name]}}


def test_segmentation_round_trip_brush_masks(seg_project, tmp_path):
    batch = query(seg_project, strategy="random", budget=3).sample_ids
    out = tmp_path / "seg.json"
    export_label_studio(seg_project, out, image_root="http://files.example/x")
    tasks = json.loads(out.read_text())
    assert [t["data"]["image"] for t in tasks] == [
        f"http://files.example/x/seg-images/{sid}.png" for sid in batch]
    from PIL import Image

    png = np.asarray(Image.open(tmp_path / "seg-images" / f"{batch[0]}.png"))
    assert png.shape == (SEG_H, SEG_W) and png.dtype == np.uint8
    assert "<BrushLabels" in out.with_suffix(".xml").read_text()

    classes = seg_project.classes
    exported = _annotate(tasks, lambda sid: mask_results(_truth_mask(sid), classes))
    (tmp_path / "e.json").write_text(json.dumps(exported))
    assert import_label_studio(seg_project, tmp_path / "e.json").n_written == 3
    labels = seg_project.current_labels()
    for sid in batch:
        stored = read_slice_mask(seg_project.directory / labels[sid].mask_path)
        assert np.array_equal(stored, _truth_mask(sid)), sid


def test_polygon_and_empty_annotations(seg_project, tmp_path):
    batch = query(seg_project, strategy="random", budget=3).sample_ids
    export_label_studio(seg_project, tmp_path / "seg.json")
    tasks = json.loads((tmp_path / "seg.json").read_text())
    h, w = SEG_H, SEG_W
    # the rectangle of pixel columns 4..11, rows 3..8 (edges on pixel borders), and inside it
    # the 'inner' one: columns 6..9, rows 5..6 (the higher class wins where they overlap)
    results = {batch[0]: [_polygon([(6, 5), (10, 5), (10, 7), (6, 7)], "inner", h, w),
                          _polygon([(4, 3), (12, 3), (12, 9), (4, 9)], "outer", h, w)],
               batch[1]: [], batch[2]: mask_results(_truth_mask(batch[2]), seg_project.classes)}
    exported = _annotate(tasks, lambda sid: results[sid])
    (tmp_path / "e.json").write_text(json.dumps(exported))
    import_label_studio(seg_project, tmp_path / "e.json")
    labels = seg_project.current_labels()
    first = read_slice_mask(seg_project.directory / labels[batch[0]].mask_path)
    expected = np.zeros((h, w), dtype=np.uint8)
    expected[3:9, 4:12] = 1
    expected[5:7, 6:10] = 2
    assert np.array_equal(first, expected)
    empty = read_slice_mask(seg_project.directory / labels[batch[1]].mask_path)
    assert empty.shape == (h, w) and not empty.any()  # submitted with no region: background


def test_segmentation_bad_regions_refused(seg_project, tmp_path):
    query(seg_project, strategy="random", budget=3)
    export_label_studio(seg_project, tmp_path / "seg.json")
    tasks = json.loads((tmp_path / "seg.json").read_text())
    good = mask_results(_truth_mask("case0/0"), seg_project.classes)
    wrong_size = [{**good[0], "original_width": SEG_W + 1}]
    typo = [{**good[0], "value": {**good[0]["value"], "brushlabels": ["outter"]}}]
    cut = [{**good[0], "value": {**good[0]["value"], "rle": good[0]["value"]["rle"][:9]}}]
    results = iter([wrong_size, typo, cut])
    exported = _annotate(tasks, lambda sid: next(results))
    (tmp_path / "e.json").write_text(json.dumps(exported))
    before = _label_rows(seg_project)
    with pytest.raises(BadRows) as info:
        import_label_studio(seg_project, tmp_path / "e.json")
    lines = str(info.value).splitlines()[1:]
    assert len(lines) == 3
    assert lines[0].startswith("  task 1: ") and "the slice is 12 x 16" in lines[0]
    assert lines[1].startswith("  task 2: ") and "class 'outter' is not in the project" in lines[1]
    assert lines[2].startswith("  task 3: ") and "truncated" in lines[2]
    assert _label_rows(seg_project) == before


@pytest.mark.slow
def test_segmentation_predictions_decode_to_the_models_masks(seg_project, tmp_path):
    batch0 = query(seg_project, strategy="random", budget=3).sample_ids
    folder = tmp_path / "m"
    for sid in batch0:
        path = folder / f"{sid}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.fromarray(_truth_mask(sid)).save(path)
    import_labels(seg_project, folder)
    train(seg_project)
    query(seg_project, strategy="entropy", budget=2)
    export_label_studio(seg_project, tmp_path / "seg.json")
    tasks = json.loads((tmp_path / "seg.json").read_text())
    assert len(tasks) == 2
    for task in tasks:
        (pred,) = task["predictions"]
        for r in pred["result"]:
            assert r["type"] == "brushlabels" and r["value"]["brushlabels"][0] in ("outer",
                                                                                  "inner")
            assert rle_to_mask(r["value"]["rle"], SEG_H, SEG_W).shape == (SEG_H, SEG_W)


# -- SIGKILL during a Label Studio import ------------------------------------------------------
N_TASKS = 20


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [1, N_TASKS // 2, N_TASKS])
def test_sigkill_label_studio_import(tmp_path, kill_at):
    """Killed after the first, a middle and the last row written inside its transaction: the
    database passes integrity_check, earlier labels survive, none of the file's rows are
    stored, and rerunning the import finishes it."""
    truth = write_folder(tmp_path / "images", n=N_TASKS + 4, subfolder_every=0)
    store = init_project(tmp_path / "proj", tmp_path / "images", classes=["a", "b"],
                         initial=N_TASKS)
    ids = sorted(truth)
    batch = query(store, strategy="random", budget=N_TASKS).sample_ids
    committed = [i for i in ids if i not in batch]
    import_labels(store, write_csv(tmp_path / "first.csv",
                                   [(i, "ab"[truth[i]]) for i in committed]), annotator="early")
    export_label_studio(store, tmp_path / "tasks.json")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    (tmp_path / "e.json").write_text(json.dumps(
        _annotate(tasks, lambda sid: _choice("ab"[truth[sid]]))))
    store.close()
    proj, mark = tmp_path / "proj", tmp_path / "mark"
    args = ("project", "import", str(proj), str(tmp_path / "e.json"))
    proc = start_cli(*args, **{DELAY_ENV: "0.05", MARK_ENV: str(mark)})
    wait_for_row(proc, mark, kill_at)
    sigkill(proc)

    conn = sqlite3.connect(proj / "project.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = dict(conn.execute("SELECT sample_id, value FROM labels").fetchall())
    conn.close()
    assert rows == {i: truth[i] for i in committed}  # committed ones kept, none of the file's
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    store = ProjectStore(proj)
    assert store.integrity_check() == "ok"
    assert {sid: lab.value for sid, lab in store.current_labels().items()} == truth
    store.close()
