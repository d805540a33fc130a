"""The README's "Use as a library" code block runs unchanged."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def library_block() -> str:
    text = README.read_text()
    section = text[text.index("## Use as a library"):]
    section = section[:section.index("\n## ", 3)]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_library_example_runs_as_written(capsys):
    code = library_block()
    assert "ActiveLearningCycle" in code and "model_predictions" in code
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})  # noqa: S102 - the README's own code
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("BADGE asks for [")
    assert out[1].startswith("round 1: 15 labels, BALD asked for [")
    assert out[2].startswith("round 2: 20 labels, BALD asked for [")
