"""Progress of blob transfers, reported through a small protocol (the CLI draws it).

Calls may come from worker threads; implementations serialise themselves.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ocibuild.observe.log import Reporter, human_size


class Progress(Protocol):
    def begin(self, key: str, label: str, total: int) -> None: ...
    def update(self, key: str, done: int) -> None: ...
    def end(self, key: str, note: str) -> None: ...
    def note(self, message: str) -> None: ...


__all__ = ["NoProgress", "PlainLines", "Progress", "ReporterProgress", "human_size"]


class NoProgress:
    def begin(self, key: str, label: str, total: int) -> None:
        pass

    def update(self, key: str, done: int) -> None:
        pass

    def end(self, key: str, note: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass


def plain_interval() -> float:
    """Seconds between two plain progress lines of one blob ($OCIBUILD_PROGRESS_INTERVAL,
    default 2)."""
    try:
        return max(0.0, float(os.environ.get("OCIBUILD_PROGRESS_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


DEFAULT_INTERVAL = 2.0


class PlainLines:
    """Progress as plain lines (logs, pipes, a build's output): a line when a blob is done
    and, while a long one moves, ``LABEL: 12.0 MB / 80.0 MB (15%)`` (``LABEL: 12.0 MB sent``
    when the size is not known yet: a layer uploaded while it is compressed) at most every
    :func:`plain_interval` seconds."""

    def __init__(self, write: Callable[[str], None], interval: float | None = None) -> None:
        self._write = write
        self.interval = plain_interval() if interval is None else interval
        self._lock = threading.Lock()
        self._blobs: dict[str, list[Any]] = {}  # key -> [label, total, time of last line]

    def begin(self, key: str, label: str, total: int) -> None:
        with self._lock:
            self._blobs[key] = [label, total, time.monotonic()]

    def update(self, key: str, done: int) -> None:
        with self._lock:
            blob = self._blobs.get(key)
            if blob is None or (blob[1] and done >= blob[1]):
                return
            now = time.monotonic()
            if now - blob[2] < self.interval:
                return
            blob[2] = now
            label, total = blob[0], blob[1]
            if not total:  # a blob sent while it is made (a streamed push): size unknown
                self._write(f"{label}: {human_size(done)} sent")
                return
            self._write(
                f"{label}: {human_size(done)} / {human_size(total)} ({100 * done // total}%)"
            )

    def end(self, key: str, note: str) -> None:
        with self._lock:
            blob = self._blobs.pop(key, None)
            self._write(f"{blob[0] if blob else key}: {note}")

    def note(self, message: str) -> None:
        with self._lock:
            self._write(message)


class ReporterProgress(PlainLines):
    """Plain lines through a build's :class:`Reporter` (used by FROM pulls, pushes)."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        super().__init__(lambda text: reporter.info(f"  {text}"))
