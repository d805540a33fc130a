"""One progress convention for long steps: a live bar on a terminal, plain lines otherwise.

On a terminal (``stream.isatty()``) a tqdm bar with rate and ETA; when the output is redirected
(a log file, CI), one plain line every ``interval`` seconds (default 5), ``stage: done/total
(pct) units, elapsed, ETA``, and a last line when the step ends, so a log shows that a long step
is alive and how long it has left without tqdm's carriage-return noise. :func:`stage` announces
a step that has no count (``loading data/x ...``).

Library code takes a ``progress: bool`` (default off) and calls :func:`progress_bar` /
:func:`progress` with ``enabled=progress``; the CLI turns it on (``--no-progress`` turns it off).
Both kinds of bar have ``update``, ``set_postfix``, ``set_postfix_str``, ``write`` and ``close``.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> for _ in progress(range(3), desc="demo", stream=out, interval=0):
    ...     pass
    >>> out.getvalue().splitlines()[-1].startswith("demo: 3/3 (100%)")
    True
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")

#: seconds between two plain progress lines
DEFAULT_INTERVAL = 5.0


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class PlainProgress:
    """Periodic plain-text progress lines (the non-terminal half of :func:`progress`).

    Args:
        total: number of steps (``None``: unknown, no percentage or ETA).
        desc: the stage's name, first on each line.
        unit: what a step is (``"epoch"``, ``"image"``).
        stream: where lines go (default ``sys.stderr``).
        interval: seconds between lines (0: a line per update).
    """

    def __init__(self, total: int | None, *, desc: str, unit: str = "it",
                 stream: IO[str] | None = None, interval: float = DEFAULT_INTERVAL) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.n = 0
        self.postfix = ""
        self._start = time.monotonic()
        self._last = self._start
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write(now)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def set_postfix(self, refresh: bool = True, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def write(self, line: str, file: IO[str] | None = None) -> None:
        """A message line to ``file`` (default ``sys.stdout``), as tqdm's ``write``."""
        print(line, file=file if file is not None else sys.stdout, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._write(time.monotonic())

    def _write(self, now: float) -> None:
        elapsed = now - self._start
        if self.total:
            pct = 100.0 * self.n / self.total
            eta_text = (_clock(elapsed / self.n * (self.total - self.n)) if self.n
                        else "?")
            line = (f"{self.desc}: {self.n}/{self.total} ({pct:.0f}%) {self.unit}s, "
                    f"elapsed {_clock(elapsed)}, ETA {eta_text}")
        else:
            line = f"{self.desc}: {self.n} {self.unit}s, elapsed {_clock(elapsed)}"
        if self.postfix:
            line += f", {self.postfix}"
        print(line, file=self.stream, flush=True)


def stage(text: str, *, enabled: bool = True, stream: IO[str] | None = None) -> None:
    """One plain line saying which long step starts (``"loading data/x ..."``), on ``stream``
    (default ``sys.stderr``), terminal or not; nothing when ``enabled`` is false."""
    if enabled:
        print(text, file=stream if stream is not None else sys.stderr, flush=True)


def progress_bar(total: int | None, *, desc: str, unit: str = "it", enabled: bool = True,
                 stream: IO[str] | None = None, interval: float = DEFAULT_INTERVAL):
    """A progress object with ``update(n)``, ``set_postfix(...)`` and ``close()``.

    A tqdm bar when ``stream`` is a terminal, else a :class:`PlainProgress`; a silent one when
    ``enabled`` is false.
    """
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        return _Silent()
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True,
                    leave=False)
    return PlainProgress(total, desc=desc, unit=unit, stream=stream, interval=interval)


def progress(items: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it",
             enabled: bool = True, stream: IO[str] | None = None,
             interval: float = DEFAULT_INTERVAL) -> Iterator[T]:
    """Iterate over ``items`` with :func:`progress_bar` reporting (see the module doc)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    bar = progress_bar(total, desc=desc, unit=unit, enabled=enabled, stream=stream,
                       interval=interval)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, refresh: bool = True, **values) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def write(self, line: str, file: IO[str] | None = None) -> None:
        print(line, file=file if file is not None else sys.stdout, flush=True)  # not progress

    def close(self) -> None:
        pass
