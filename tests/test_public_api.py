"""``medactive.__all__``: every public name resolves and is documented; importing the package
alone stays light."""

from __future__ import annotations

import inspect
import subprocess
import sys

import medactive


def test_every_public_name_resolves_and_has_a_docstring():
    assert "ActiveLearningCycle" in medactive.__all__ and "model_predictions" in medactive.__all__
    assert set(medactive.__all__) == {"__version__", *medactive._EXPORTS}
    for name in medactive.__all__:
        value = getattr(medactive, name)
        if name == "__version__":
            assert value.count(".") == 2
            continue
        assert inspect.getdoc(value), f"{name} has no docstring"
        assert getattr(value, "__module__", "").startswith("medactive"), name


def test_unknown_names_are_attribute_errors():
    try:
        medactive.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_medactive_imports_no_torch():
    code = "import sys, medactive; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
