"""Step lines, step output and timings.

The library reports through a ``Reporter``; the CLI hands in a ``StreamReporter`` and
the Python API defaults to a ``SilentReporter`` (records are returned anyway).
"""

from __future__ import annotations

import sys
from typing import IO, Protocol


class Reporter(Protocol):
    def step(self, number: int, total: int, text: str) -> None: ...
    def output(self, data: bytes) -> None: ...
    def step_done(self, seconds: float, note: str = "") -> None: ...
    def info(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...


class SilentReporter:
    def step(self, number: int, total: int, text: str) -> None:
        pass

    def output(self, data: bytes) -> None:
        pass

    def step_done(self, seconds: float, note: str = "") -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def debug(self, message: str) -> None:
        pass


class StreamReporter:
    """Plain lines: ``[2/7] RUN make``, the step's output indented, then its duration."""

    def __init__(
        self, stream: IO[str] | None = None, *, debug: bool = False, quiet: bool = False
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.show_debug = debug
        self.quiet = quiet
        self._partial = b""

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def step(self, number: int, total: int, text: str) -> None:
        self._partial = b""
        self._write(f"[{number}/{total}] {text}\n")

    def output(self, data: bytes) -> None:
        if self.quiet:
            return
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._write("  " + line.decode("utf-8", "replace") + "\n")

    def step_done(self, seconds: float, note: str = "") -> None:
        if self._partial:
            self._write("  " + self._partial.decode("utf-8", "replace") + "\n")
            self._partial = b""
        suffix = f", {note}" if note else ""
        self._write(f"  -> done in {seconds:.2f}s{suffix}\n")

    def info(self, message: str) -> None:
        self._write(message + "\n")

    def debug(self, message: str) -> None:
        if self.show_debug:
            self._write(f"debug: {message}\n")
