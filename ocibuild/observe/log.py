"""Step lines, step output and timings.

The library reports through a ``Reporter``; the CLI hands in a ``StreamReporter`` and
the Python API defaults to a ``SilentReporter`` (records are returned anyway).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Protocol


class Reporter(Protocol):
    def step(self, number: int, total: int, text: str) -> None: ...
    def output(self, data: bytes) -> None: ...
    # cached: a cache hit (nothing ran); the note says what the step made
    def step_done(self, seconds: float, note: str = "", *, cached: bool = False) -> None: ...
    def info(self, message: str) -> None: ...
    def note(self, text: str) -> None: ...  # about the step (cache decision), before output
    def debug(self, message: str) -> None: ...


class SilentReporter:
    def step(self, number: int, total: int, text: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def output(self, data: bytes) -> None:
        pass

    def step_done(self, seconds: float, note: str = "", *, cached: bool = False) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def debug(self, message: str) -> None:
        pass


class QuietReporter(SilentReporter):
    """Nothing about the steps; only warnings (``info`` lines starting ``warning:``) reach
    ``stream`` (standard error). What ``ocibuild build -q`` uses; in the Python API,
    ``ocibuild.build(..., reporter=ocibuild.QuietReporter())`` keeps a loop's output to
    its own prints. Errors are raised, never printed."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr

    def info(self, message: str) -> None:
        if message.startswith("warning:"):
            self.stream.write(message + "\n")
            self.stream.flush()


class JsonReporter:
    """``--progress rawjson``: one JSON object a line, for programs to read:
    ``{"event": "step"|"note"|"output"|"done"|"info"|"debug", "time": ..., ...}``."""

    def __init__(self, stream: IO[str] | None = None, *, debug: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.show_debug = debug
        self.lock = threading.Lock()

    def _emit(self, event: str, **fields: object) -> None:
        line = json.dumps({"event": event, "time": round(time.time(), 3), **fields})
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def step(self, number: int, total: int, text: str) -> None:
        self._emit("step", number=number, total=total, text=text)

    def note(self, text: str) -> None:
        self._emit("note", text=text)

    def output(self, data: bytes) -> None:
        self._emit("output", data=data.decode("utf-8", "replace"))

    def step_done(self, seconds: float, note: str = "", *, cached: bool = False) -> None:
        self._emit("done", seconds=round(seconds, 3), cached=cached, note=note)

    def info(self, message: str) -> None:
        self._emit("info", message=message)

    def debug(self, message: str) -> None:
        if self.show_debug:
            self._emit("debug", message=message)


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

    def step_done(self, seconds: float, note: str = "", *, cached: bool = False) -> None:
        if self._partial:
            self._write("  " + self._partial.decode("utf-8", "replace") + "\n")
            self._partial = b""
        if cached:  # nothing ran: say so first
            self._write("  -> HIT" + (f", {note}" if note else "") + "\n")
            return
        suffix = f", {note}" if note else ""
        self._write(f"  -> done in {seconds:.2f}s{suffix}\n")

    def info(self, message: str) -> None:
        self._write(message + "\n")

    def note(self, text: str) -> None:
        for line in text.splitlines():
            self._write("  " + line + "\n")

    def debug(self, message: str) -> None:
        if self.show_debug:
            self._write(f"debug: {message}\n")


class StepBufferingReporter:
    """For stages running in parallel: a step's lines are held back and written to the
    shared reporter in one block when the step ends, so steps never interleave."""

    def __init__(self, inner: Reporter, lock: threading.Lock, prefix: str = "") -> None:
        self.inner = inner
        self.lock = lock
        self.prefix = prefix
        self._held: list[tuple[str, tuple[object, ...]]] = []

    def step(self, number: int, total: int, text: str) -> None:
        self._held = [("step", (number, total, self.prefix + text))]

    def output(self, data: bytes) -> None:
        self._held.append(("output", (data,)))

    def note(self, text: str) -> None:
        self._held.append(("note", (text,)))

    def step_done(self, seconds: float, note: str = "", *, cached: bool = False) -> None:
        held, self._held = self._held, []
        with self.lock:
            for name, args in held:
                getattr(self.inner, name)(*args)
            self.inner.step_done(seconds, note, cached=cached)

    def info(self, message: str) -> None:
        with self.lock:
            self.inner.info(message)

    def debug(self, message: str) -> None:
        self._held.append(("debug", (message,)))

    def flush(self) -> None:
        """Write what a failed step held back (its output explains the failure)."""
        held, self._held = self._held, []
        with self.lock:
            for name, args in held:
                getattr(self.inner, name)(*args)


def human_size(size: int) -> str:
    """``1234567`` -> ``1.2 MB`` (decimal units, as docker prints sizes)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
