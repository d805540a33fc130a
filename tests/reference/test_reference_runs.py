"""The same seed gives the same selections and metrics as the committed reference runs.

The references were written before the package was restructured (issue 14); they pin what a
user sees, so any move of code that changes a selected id, a score or a metric fails here."""

from __future__ import annotations

import json
import math

import pytest

from tests.reference.reference_runs import HERE, run_classification, run_segmentation


def _compare(got: dict, want: dict) -> None:
    assert got["selected"].keys() == want["selected"].keys()
    for rnd, rows in want["selected"].items():
        assert [r[0] for r in got["selected"][rnd]] == [r[0] for r in rows], f"round {rnd} ids"
        for (_, a), (_, b) in zip(got["selected"][rnd], rows):
            assert (a is None) == (b is None)
            if b is not None:
                assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6), f"round {rnd} score"
    assert [(r["round"], r["n_labeled"]) for r in got["rounds"]] == \
        [(r["round"], r["n_labeled"]) for r in want["rounds"]]
    for g, w in zip(got["rounds"], want["rounds"]):
        assert g["metrics"].keys() == w["metrics"].keys()
        for key, value in w["metrics"].items():
            assert math.isclose(g["metrics"][key], value, rel_tol=1e-6, abs_tol=1e-6), \
                f"round {w['round']} {key}: {g['metrics'][key]} != {value}"


@pytest.mark.parametrize("name,fn", [("classification", run_classification),
                                     ("segmentation", run_segmentation)])
def test_same_seed_same_selections_and_metrics_as_the_reference(name, fn, tmp_path):
    want = json.loads((HERE / f"{name}.json").read_text())
    _compare(fn(tmp_path), want)
