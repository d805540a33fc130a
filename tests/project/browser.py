"""What every browser test of the page needs: a real ``medactive serve`` process and Debian's
headless Chromium driven by Playwright, started and stopped in one place.

    with served_in_chromium(proj) as (server, browser):
        page = new_page(browser)
        first = sign_in(page, server.url, token)
        second = press_and_wait(page, "1", first)
        server.kill(); server.start()          # a hard crash and a restart on the same port

Tests skip (``chromium()``) when Playwright or /usr/bin/chromium is missing (``.ci/run``
installs Debian's chromium).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SRC = Path(__file__).resolve().parents[2] / "src"


def chromium():
    """Playwright's ``sync_playwright``, or skip the test with the reason."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    return sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``medactive serve PROJ`` in a subprocess on a free port; ``url`` uses ``host`` (the
    loopback names ``127.0.0.1`` and ``localhost`` both work)."""

    def __init__(self, proj: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.proj = Path(proj)
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}/"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        env = dict(os.environ,
                   PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "medactive.cli", "serve", str(self.proj),
             "--port", str(self.port)], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.proc.stderr.read().decode()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.proc.kill()
        raise AssertionError("server did not start")

    def kill(self) -> None:
        """SIGKILL, as a crash would, and wait for the process to be gone."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@contextlib.contextmanager
def served_in_chromium(proj: Path, *, host: str = "127.0.0.1") -> Iterator[tuple[Server, object]]:
    """A started :class:`Server` for ``proj`` and a launched headless Chromium; both are stopped
    on exit, also when the test fails."""
    sync_playwright = chromium()
    server = Server(proj, host=host).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield server, browser
            finally:
                browser.close()
    finally:
        server.stop()


def new_page(browser, *, width: int = 1100, height: int = 760):
    """A page in its own context (its own sessionStorage, so its own annotator).

    ``bypass_csp``: Playwright's ``wait_for_function`` evaluates strings, which the page's strict
    Content-Security-Policy (no eval) would refuse."""
    return browser.new_context(viewport={"width": width, "height": height},
                               bypass_csp=True).new_page()


def sign_in(page, url: str, token: str) -> str:
    """Sign in with ``token``; returns the id of the first item offered."""
    page.goto(url)
    page.fill("#token", token)
    page.click("#login-button")
    page.wait_for_function("document.querySelector('#sample-id').textContent.length > 0")
    return page.text_content("#sample-id")


def press_and_wait(page, key: str, old_id: str) -> str:
    """Press ``key`` and wait until another item than ``old_id`` is shown; returns its id."""
    page.keyboard.press(key)
    page.wait_for_function(
        "old => { const t = document.querySelector('#sample-id').textContent;"
        " return t.length > 0 && t !== old; }", arg=old_id)
    return page.text_content("#sample-id")


def shot(page, name: str) -> None:
    """Save a screenshot as ``$MEDACTIVE_SCREENSHOT_DIR/name`` when that variable is set (how the
    pictures of docs/ANNOTATION.md are made)."""
    folder = os.environ.get("MEDACTIVE_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / name))
