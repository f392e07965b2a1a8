"""Progress of blob transfers, reported through a small protocol (the CLI draws it).

Calls may come from worker threads; implementations serialise themselves.
"""

from __future__ import annotations

import threading
from typing import Protocol

from ocibuild.observe.log import Reporter, human_size


class Progress(Protocol):
    def begin(self, key: str, label: str, total: int) -> None: ...
    def update(self, key: str, done: int) -> None: ...
    def end(self, key: str, note: str) -> None: ...
    def note(self, message: str) -> None: ...


__all__ = ["NoProgress", "Progress", "ReporterProgress", "human_size"]


class NoProgress:
    def begin(self, key: str, label: str, total: int) -> None:
        pass

    def update(self, key: str, done: int) -> None:
        pass

    def end(self, key: str, note: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass


class ReporterProgress:
    """Plain lines through a build's :class:`Reporter` (used by FROM pulls)."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self._lock = threading.Lock()
        self._labels: dict[str, str] = {}

    def begin(self, key: str, label: str, total: int) -> None:
        with self._lock:
            self._labels[key] = label

    def update(self, key: str, done: int) -> None:
        pass

    def end(self, key: str, note: str) -> None:
        with self._lock:
            self.reporter.info(f"  {self._labels.get(key, key)}: {note}")

    def note(self, message: str) -> None:
        with self._lock:
            self.reporter.info(f"  {message}")
