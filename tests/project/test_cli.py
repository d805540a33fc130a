"""``medactive project ...`` commands: output, exit codes, one clear error per failure."""

from __future__ import annotations

import json

from medactive.cli import main
from medactive.project.store import ProjectStore

from .conftest import write_csv


def test_init_status_annotator_query_export_import(tmp_path, image_folder, capsys):
    root, truth = image_folder
    proj = tmp_path / "p"
    assert main(["project", "init", str(proj), "--images", str(root), "--classes", "a,b",
                 "--initial", "3"]) == 0
    assert "12 samples (pool 12, val 0, test 0), classes a, b" in capsys.readouterr().out
    assert main(["project", "init", str(proj), "--images", str(root), "--classes",
                 "a,b"]) == 2
    assert "already a medactive project" in capsys.readouterr().err

    assert main(["project", "add-annotator", str(proj), "alice"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert ProjectStore(proj).annotator_for_token(token) == "alice"

    assert main(["project", "query", str(proj), "--strategy", "random", "--budget", "5"]) == 0
    assert "round 0: 3 samples pending (initial)" in capsys.readouterr().out
    out = tmp_path / "batch.csv"
    assert main(["project", "export", str(proj), "--out", str(out)]) == 0
    ids = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
    assert len(ids) == 3

    bad = write_csv(tmp_path / "bad.csv", [(ids[0], "a"), ("ghost", "b"), (ids[1], "zzz")])
    assert main(["project", "import", str(proj), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "2 bad rows, nothing imported" in err and "line 3: unknown id 'ghost'" in err
    assert "line 4: class 'zzz'" in err and "Traceback" not in err

    good = write_csv(tmp_path / "good.csv", [(i, "ab"[truth[i]]) for i in ids])
    assert main(["project", "import", str(proj), str(good), "--annotator", "alice"]) == 0
    assert "3 labels written" in capsys.readouterr().out

    assert main(["project", "status", str(proj)]) == 0
    text = capsys.readouterr().out
    assert "pool 12 (3 labelled)" in text and "round 0: initial, 3 samples: 3 labelled" in text
    assert "database integrity: ok" in text
    assert main(["project", "status", str(proj), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["labelled"]["pool"] == 3 and info["integrity"] == "ok"


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["project", "status", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"medactive: error: {tmp_path / 'nowhere'}: no such project directory")
    assert main(["project", "init", str(tmp_path / "p"), "--images", str(tmp_path / "none"),
                 "--classes", "a,b"]) == 2
    assert "not a folder" in capsys.readouterr().err
