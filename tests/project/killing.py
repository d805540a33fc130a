"""Shared by the SIGKILL tests: start ``medactive`` in a subprocess with this checkout's
sources, wait until it has written row ``k`` (the mark file the code under test updates when
``*_MARK`` is set), kill it as a crash would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment with ``src`` first on ``PYTHONPATH``, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def start_cli(*args: str, **env: str) -> subprocess.Popen:
    """``python -m medactive.cli ARGS`` with ``env`` added to :func:`cli_env`."""
    return subprocess.Popen([sys.executable, "-m", "medactive.cli", *args], env=cli_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m medactive.cli ARGS`` to its end (the rerun after a kill), output as text."""
    return subprocess.run([sys.executable, "-m", "medactive.cli", *args], env=cli_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


def wait_for_row(proc: subprocess.Popen, mark: Path, row: int, timeout: float = 60) -> None:
    """Return once ``mark`` holds a number ``>= row``; fail if ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = mark.read_text().strip() if mark.is_file() else ""
        if text.isdigit() and int(text) >= row:
            return
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[3:5]} ended before row {row}: "
                                 f"{proc.stderr.read()!r}")
        time.sleep(0.005)
    raise AssertionError(f"{proc.args[3:5]} did not reach row {row} in {timeout} s")


def sigkill(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and check it died of it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
