"""``--trace FILE``: one JSON record per build step, written as the step finishes.

A record tells where the step's time went::

    {"step": 3, "stage": "0", "instruction": "RUN make", "line": 3,
     "cache": "miss", "cache_key": "sha256:...", "seconds": 0.041,
     "key_seconds": 0.0001, "prepare_seconds": 0.004, "runtime_seconds": 0.027,
     "diff_seconds": 0.002, "hash_seconds": 0.001, "write_seconds": 0.0003,
     "cleanup_seconds": 0.002, "layer_bytes": 10240, "files": 1, ...}

``cache`` is ``hit`` (nothing ran), ``miss`` (ran, result recorded), ``off`` (``--no-cache``
or ``--no-cache-filter``: ran without looking, result recorded) or ``none`` (the step has
no key, e.g. FROM). Phases: ``prepare`` = scratch dirs + overlay mount(s); ``runtime`` =
the rest of a RUN (user lookup, bundle, the runtime itself, stub removal); ``copy`` = the
rest of a COPY/ADD; ``diff`` = walking the upper dir into a tar stream; ``hash`` = sha256
of that stream; ``write`` = moving the upper dir into the store; ``cleanup`` = unmount and
scratch removal. Context hashing (COPY/ADD keys) reports files seen, files actually read
(``context_files_read``: 0 when the stat cache knew every file) and bytes read.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from ocibuild import _record
from ocibuild._record import dataclass, field
from ocibuild.fs.atomic import write_atomic

if TYPE_CHECKING:
    from ocibuild.layers.tarwriter import TreeStats


@dataclass
class StepTimings:
    """Seconds per phase and counts, filled in by the code that does the work."""

    key: float = 0.0
    prepare: float = 0.0
    diff: float = 0.0
    hash: float = 0.0
    write: float = 0.0
    cleanup: float = 0.0
    layer_bytes: int = 0
    content_bytes: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    whiteouts: int = 0
    context_files: int = 0
    context_files_read: int = 0
    context_bytes_read: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the time spent in the ``with`` body to phase ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, name, getattr(self, name) + time.perf_counter() - started)

    def record_layer(self, seconds: float, size: int, stats: TreeStats) -> None:
        """A layer was tarred and hashed in ``seconds``; the sink (sha256) took part of it."""
        self.hash += stats.sink_seconds
        self.diff += max(0.0, seconds - stats.sink_seconds)
        self.layer_bytes += size
        self.content_bytes += stats.content_bytes
        self.files += stats.files
        self.dirs += stats.dirs
        self.symlinks += stats.symlinks
        self.hardlinks += stats.hardlinks
        self.whiteouts += stats.whiteouts

    def accounted(self) -> float:
        return self.key + self.prepare + self.diff + self.hash + self.write + self.cleanup


def step_record(
    *,
    number: int,
    stage: str,
    instruction: str,
    line: int,
    seconds: float,
    cache: str,
    cache_key: str | None,
    timings: StepTimings,
    diff_id: str | None,
) -> dict[str, Any]:
    """The JSON record of one step (the remainder of the time goes to runtime/copy)."""
    rest = max(0.0, seconds - timings.accounted())
    keyword = instruction.split(None, 1)[0].upper() if instruction.strip() else ""
    work = (
        "runtime_seconds"
        if keyword == "RUN"
        else "copy_seconds"
        if keyword
        in (
            "COPY",
            "ADD",
        )
        else "other_seconds"
    )
    counts = _record.asdict(timings)
    extra = counts.pop("extra")
    record: dict[str, Any] = {
        "step": number,
        "stage": stage,
        "instruction": instruction,
        "line": line,
        "cache": cache,
        "cache_key": cache_key,
        "seconds": round(seconds, 6),
    }
    for name in ("key", "prepare", "diff", "hash", "write", "cleanup"):
        record[f"{name}_seconds"] = round(counts.pop(name), 6)
    record[work] = round(0.0 if cache == "hit" else rest, 6)
    record["diff_id"] = diff_id
    record.update(counts)
    record.update(extra)
    return record


class Tracer:
    """Appends JSON lines to a file as steps end (safe from several stage threads); on
    close the file is rewritten in step order (a FROM record is known only when its
    stage ends, and parallel stages finish in any order)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._lines: list[tuple[int, str]] = []
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._lines.append((int(record.get("step", 0)), line))
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            self._file.close()
            lines = (line for _, line in sorted(self._lines, key=lambda x: x[0]))
            write_atomic(self.path, "".join(lines), durable=False)


def read_trace(path: str) -> list[dict[str, Any]]:
    """The records of a trace file (for tests and the benchmark)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
