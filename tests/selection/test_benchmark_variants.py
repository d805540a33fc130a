"""benchmarks/selection.py takes strategy options per row (issue 16): NAME@KEY=VALUE;..."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "selection.py"


def _module():
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} not found")
    spec = importlib.util.spec_from_file_location("bench_selection", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parse_variant_by_hand():
    parse = _module().parse_variant
    assert parse("badge") == ("badge", {})
    assert parse("badge@seeding=kmeans||;rounds=3;oversampling=0.5") == (
        "badge", {"seeding": "kmeans||", "rounds": 3, "oversampling": 0.5})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse("badge@float16")


@pytest.mark.slow
def test_variants_are_rows_of_one_run_and_bad_options_one_line():
    rows = ["badge@embedding_dtype=float32;lazy_updates=1", "badge@seeding=kmeans||",
            "coreset_l2@embedding_dtype=float16"]
    proc = subprocess.run([sys.executable, str(SCRIPT), "--n", "3000", "--budget", "20",
                           "--n-labeled", "20", "--dim", "16", "--impls", "ours",
                           "--strategies", *rows], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == rows
    bad = subprocess.run([sys.executable, str(SCRIPT), "--n", "3000", "--strategies",
                          "badge@seeding=fast"], capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode != 0 and "seeding" in bad.stderr and "Traceback" not in bad.stderr
