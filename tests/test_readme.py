"""The README's commands work when followed as written, in a fresh shell, after the Quick start.

``test_readme_commands_run`` takes the shell command lines of every section after the Quick start
(code blocks marked ```` ```bash ```` or ```` ```sh ````), in order, and runs each one in a fresh
``bash -c`` in one scratch working folder, with only what the Quick start itself does to a new
shell (its ``source .../activate`` line, if it has one; nothing else puts ``medactive`` on PATH).
Each must exit 0. What the test changes, all listed here:

- set-up lines that install (``pip``, ``apt``/``apt-get``, ``scripts/setup*.sh``) are not run:
  the Quick start made the environment (``INSTALLS``);
- long jobs run on the smoke settings (``SMOKE``): ``--preset cpu|survey`` becomes
  ``--preset smoke``, ``--rounds N`` one round, ``--epochs N`` one epoch (``pretrain`` also on a
  width-8 backbone), and a benchmark grid other than ``smoke-bench`` runs one seed, one round,
  one budget of 20 with ``random`` only;
- the two human steps of "Label your own data": ``medactive serve`` runs until its page answers,
  then is stopped (it serves until interrupted); after ``project export ... --out FILE`` the
  test fills FILE's label column from the sample's ``answers.csv``, as the expert would;
- a ```` ```toml ```` block whose first line is ``# NAME.toml`` is written to ``NAME.toml`` before
  the commands run (the README's example grid file);
- without the real data in ``../shared/data`` beside the checkout, the commands that read it
  (``needs_real_data``) are left out and named in a warning.

The scratch folder stands in for the checkout: links to its tracked top-level entries and
``.venv``, and ``../shared`` beside it links to the real one, so relative paths mean what they
mean in the checkout while every file the commands write lands in the scratch folder.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SAMPLE = ROOT / "examples" / "chest-xray-sample"

#: a command line that installs something (not run: the Quick start set the environment up)
INSTALLS = re.compile(r"(^|[\s;&|(])(pip3?|python3? -m pip|apt(-get)?|\S*setup[\w-]*\.sh)(\s|$)")
#: (pattern, replacement) turning a long job into a smoke-sized one
SMOKE = (
    (re.compile(r"--preset (cpu|survey)\b"), "--preset smoke"),
    (re.compile(r"--rounds \d+"), "--rounds 1"),
    (re.compile(r"--epochs \d+"), "--epochs 1"),
    (re.compile(r"^(medactive pretrain\b.*)$"), r"\1 --width 8"),
    (re.compile(r"(medactive bench --config (?!smoke-bench\b)\S+[^&|;]*)"),
     r"\1 --preset smoke --rounds 1 --seeds 0 --strategies random --budgets 20 --no-supervised"),
)
ACTIVATE = re.compile(r"^(source|\.)\s+\S*activate$")
SERVE = re.compile(r"^medactive serve\b")
EXPORT_OUT = re.compile(r"^medactive project export\b.*--out (\S+)")


def sections(text: str) -> tuple[str, str]:
    """``(Quick start section, everything after it)`` of a README."""
    match = re.search(r"^## Quick start.*?$(.*?)(?=^## )", text, flags=re.MULTILINE | re.DOTALL)
    assert match, "README has no '## Quick start' section followed by another section"
    return match.group(1), text[match.end():]


def code_blocks(text: str, langs: tuple[str, ...] = ("bash", "sh")) -> list[str]:
    """Bodies of the fenced code blocks whose info string is one of ``langs``, in order."""
    fences = re.finditer(r"^```(\w+)[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [m.group(2) for m in fences if m.group(1) in langs]


def command_lines(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments (a ``#`` at the start
    of a word, to the end of the line) and blank lines dropped."""
    commands, current = [], ""
    for raw in block.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not current and not line:
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        commands.append(current + line)
        current = ""
    return commands


def activation(quick_start: str) -> str | None:
    """The Quick start's line that activates the virtual environment, if it has one."""
    for block in code_blocks(quick_start):
        for command in command_lines(block):
            if ACTIVATE.match(command):
                return command
    return None


def smoke(command: str) -> str:
    for pattern, replacement in SMOKE:
        command = pattern.sub(replacement, command)
    return command


def needs_real_data(command: str) -> bool:
    """Reads ``../shared/data``: named on the line, or a benchmark (presets and the README's grid
    file take their data from there) and its report."""
    return "../shared/data" in command or bool(
        re.match(r"medactive (bench --config|report)\b", command))


def later_commands(text: str) -> list[str]:
    _, later = sections(text)
    return [c for block in code_blocks(later) for c in command_lines(block)]


def test_command_lines_rule():
    block = ("# 1. a comment\nmedactive project init p --images s/ \\\n    --initial 20\n\n"
             "medactive serve p   # then stop it\n")
    assert command_lines(block) == ["medactive project init p --images s/ --initial 20",
                                    "medactive serve p"]
    assert smoke("medactive run --preset cpu --rounds 5 --out r") == \
        "medactive run --preset smoke --rounds 1 --out r"
    assert smoke("medactive bench --config smoke-bench --out r && x") == \
        "medactive bench --config smoke-bench --out r && x"
    assert smoke("medactive bench --config cpu-blood --out r") == (
        "medactive bench --config cpu-blood --out r --preset smoke --rounds 1 --seeds 0 "
        "--strategies random --budgets 20 --no-supervised")
    assert smoke("medactive pretrain --data d --epochs 20 --out e.pt") == \
        "medactive pretrain --data d --epochs 1 --out e.pt --width 8"
    assert INSTALLS.search("./scripts/setup.sh && x") and INSTALLS.search("pip install -e .")
    assert not INSTALLS.search("medactive pretrain --data x")


def test_readme_activates_what_it_runs():
    # every later `medactive ...` line needs the command on PATH: the Quick start must put it
    # there for a new shell (the README used to run `.venv/bin/medactive demo` once, then
    # bare `medactive`, which a fresh shell does not find)
    quick_start, _ = sections(README.read_text())
    bare = [c for c in later_commands(README.read_text()) if c.startswith("medactive ")]
    assert bare, "no medactive commands after the Quick start?"
    assert activation(quick_start) is not None, f"not on PATH in a new shell: {bare[0]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scratch_checkout(tmp_path: Path) -> Path:
    work = tmp_path / "checkout"
    work.mkdir()
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split()
        names = {name.split("/", 1)[0] for name in tracked}
    except (OSError, subprocess.CalledProcessError):
        names = {"README.md", "pyproject.toml", "src", "examples", "scripts", "docs"}
    for name in sorted(names | {".venv", "examples"}):
        if (ROOT / name).exists():
            (work / name).symlink_to(ROOT / name)
    if (ROOT.parent / "shared").exists():
        (tmp_path / "shared").symlink_to(ROOT.parent / "shared")
    return work


def _shell_env(tmp_path: Path) -> dict[str, str]:
    """This environment as a new login shell would see it: no virtual environment active and no
    directory on PATH that holds a ``medactive`` executable."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(
        d for d in env.get("PATH", "").split(os.pathsep)
        if d and not (Path(d) / "medactive").exists())
    env["MEDACTIVE_CACHE"] = str(tmp_path / "cache")  # keep the embedding cache out of $HOME
    env.pop("PS1", None)
    return env


def _fill_labels(batch: Path) -> None:
    with open(SAMPLE / "answers.csv", newline="") as f:
        truth = {row["id"]: row["label"] for row in csv.DictReader(f)}
    with open(batch, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["label"] = truth[row["id"]]
    with open(batch, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _serve_until_up(script: str, work: Path, env: dict[str, str], port: int) -> str:
    proc = subprocess.Popen(["bash", "-c", script], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                return f"exited {proc.returncode} before serving: {proc.stdout.read()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        return ""
            except OSError:
                time.sleep(0.2)
        return "the page did not answer within 2 minutes"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_readme_commands_run(tmp_path):
    text = README.read_text()
    quick_start, later = sections(text)
    work = _scratch_checkout(tmp_path)
    env = _shell_env(tmp_path)
    prefix = activation(quick_start)
    prefix = f"{prefix} && " if prefix else ""
    for block in code_blocks(later, ("toml",)):
        first = block.partition("\n")[0]
        name = first.lstrip("# ").split()[0] if first.startswith("#") else ""
        if name.endswith(".toml"):
            (work / name).write_text(block)
    has_data = (work.parent / "shared" / "data").is_dir()
    left_out, took = [], []
    for command in later_commands(text):
        start = time.monotonic()
        if INSTALLS.search(command):
            continue
        if needs_real_data(command) and not has_data:
            left_out.append(command)
            continue
        line = smoke(command)
        if SERVE.match(line):
            port = _free_port()
            line += f" --port {port}"
            problem = _serve_until_up(prefix + line, work, env, port)
            assert not problem, f"README command {command!r}: {problem}"
            took.append((time.monotonic() - start, line))
            print(f"{took[-1][0]:6.1f} s  {line}", flush=True)
            continue
        result = subprocess.run(["bash", "-c", prefix + line], cwd=work, env=env, text=True,
                                capture_output=True, timeout=1800, check=False)
        assert result.returncode == 0, (
            f"README command {command!r} (run as {line!r}) exited {result.returncode}:\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        if match := EXPORT_OUT.match(line):
            _fill_labels(work / shlex.split(match.group(1))[0])
        took.append((time.monotonic() - start, line))
        print(f"{took[-1][0]:6.1f} s  {line}", flush=True)  # shown with -s
    if left_out:
        warnings.warn("without ../shared/data, not run: " + "; ".join(left_out), stacklevel=1)


def test_sample_folder_is_pneumoniamnist_as_documented():
    # examples/chest-xray-sample: every PNG is the PneumoniaMNIST test image its provenance row
    # names, eval.csv + answers.csv label each exactly once with that image's class
    import numpy as np
    from PIL import Image

    def rows(name):
        with open(SAMPLE / name, newline="") as f:
            return list(csv.DictReader(f))

    data = np.load(ROOT / "src" / "medactive" / "assets" / "pneumoniamnist.npz")
    labels = {r["id"]: r["label"] for r in rows("eval.csv") + rows("answers.csv")}
    pngs = sorted(p.stem for p in (SAMPLE / "scans").glob("*.png"))
    assert len(pngs) == 100 and sorted(labels) == pngs
    assert len(rows("eval.csv")) + len(rows("answers.csv")) == 100
    assert sorted(r["split"] for r in rows("eval.csv")) == ["test"] * 20 + ["val"] * 20
    for row in rows("provenance.csv"):
        index = int(row["medmnist_index"])
        pixels = np.asarray(Image.open(SAMPLE / "scans" / f"{row['id']}.png"))
        assert np.array_equal(pixels, data["test_images"][index])
        assert labels[row["id"]] == ("normal", "pneumonia")[int(data["test_labels"][index, 0])]
    assert sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file()) < 1_000_000
