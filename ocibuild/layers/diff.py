"""The diffID of an overlay upper dir, computed by streaming its tar into sha256 only.

From the first big file on (``tarwriter.SINK_FILE``, 8 MiB), the sha256 runs on a thread
of its own (:class:`TreeDigest`), so that hashing a big file overlaps the walk of the
files after it: the 300 MB + 20,000-file layer of the bench's big-run step hashes its
300 MB (0.19 s, sha256's own speed here) while the writer makes the 20,000 small files'
headers; its diff went from 0.61-0.88 s to 0.41-0.52 s (interleaved, same diffID). The
writer hands over the big file's descriptor (``write_file``), and that thread reads it
with ``preadv`` in 16 MiB parts: hashlib and the reads release the interpreter lock, and
parts that large need the lock back only about twenty times for 300 MB (1 MiB parts
copied to the thread waited for it up to 5 ms each time, behind the walking thread, and
were no faster than one thread). Memory stays bounded: one 16 MiB buffer and at most
``QUEUE`` items (stream buffers of about 1 MiB, or descriptors) waiting to be hashed.
A layer without a big file (most RUN steps) is hashed in the caller's thread as before.
"""

from __future__ import annotations

import hashlib
import os
import time

from ocibuild._record import dataclass
from ocibuild.errors import LayerError
from ocibuild.layers.compress import OrderedHash
from ocibuild.layers.tarwriter import TreeStats, shrunk, write_tree


@dataclass(frozen=True)
class LayerDigest:
    """diffID and uncompressed size of a layer; ``empty`` when the tree held no entries."""

    diff_id: str
    size: int
    stats: TreeStats
    empty: bool


QUEUE = 16  # tar stream buffers (about 1 MiB each) and big files queued for the hash
_PART = 16 << 20


class TreeDigest:
    """A :class:`~ocibuild.layers.tarwriter.Writable` that sha256es what it is given, in
    order: in the caller's thread until the first big file, then on the thread of an
    :class:`~ocibuild.layers.compress.OrderedHash` that continues the same hash (a layer
    without a big file, as most RUN steps make, costs no thread and no buffer). There
    ``write`` keeps ``data`` (the tree writer never touches a written buffer again; a
    memoryview is copied), and ``write_file`` hands an open descriptor over: the thread
    hashes its first ``size`` bytes and closes it. :meth:`close` raises the first error
    (a file that shrank, a read error) as a LayerError, unless ``quiet``."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.size = 0
        self._thread: OrderedHash | None = None  # from the first big file on
        self._buffer: memoryview | None = None  # the thread's reads, one at a time
        self._digest = ""

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        n = len(data)
        self.size += n
        if self._thread is None:
            self._h.update(data)
        else:
            self._thread.update(bytes(data) if isinstance(data, memoryview) else data)
        return n

    def write_file(self, fd: int, size: int, rel: bytes) -> None:
        """Hash ``size`` bytes of ``fd`` from its offset 0 (then close it), in order."""
        self.size += size
        if self._thread is None:
            self._thread = OrderedHash(depth=QUEUE, h=self._h)
            self._buffer = memoryview(bytearray(_PART))
        self._thread.feed(_hash_file, fd, size, rel, self._buffer)  # the task closes fd

    def close(self, *, quiet: bool = False) -> None:
        """Wait for the thread (every descriptor handed over is closed then); raise its
        error unless ``quiet`` (another error is already on its way)."""
        if self._thread is None:
            self._digest = self._h.hexdigest()
            return
        try:
            self._digest = self._thread.hexdigest()
        except BaseException:
            if not quiet:
                raise
        finally:
            self._thread.close()

    @property
    def diff_id(self) -> str:
        if not self._digest:
            raise ValueError("TreeDigest.diff_id before close()")
        return "sha256:" + self._digest


def _hash_file(h: hashlib._Hash, fd: int, size: int, rel: bytes, view: memoryview) -> None:
    try:
        offset = 0
        while offset < size:
            try:
                n = os.preadv(fd, [view[: min(size - offset, _PART)]], offset)
            except OSError as e:
                raise LayerError(f"cannot read {rel.decode(errors='replace')}: {e}") from e
            if n == 0:
                raise shrunk(rel)
            h.update(view[:n])
            offset += n
    finally:
        os.close(fd)


def digest_upper(upper: str, source_date_epoch: int | None) -> LayerDigest:
    """Tar ``upper`` (overlay upper-dir form) into sha256 without writing the tar anywhere."""
    try:
        empty = not os.listdir(upper)
    except OSError as e:
        raise LayerError(f"cannot read upper dir {upper}: {e}") from e
    sink = TreeDigest()
    try:
        stats = write_tree(upper, sink, mode="upper", source_date_epoch=source_date_epoch)
    except BaseException:
        sink.close(quiet=True)
        raise
    started = time.perf_counter()
    sink.close()
    stats.sink_seconds += time.perf_counter() - started  # the hashing the walk did not hide
    return LayerDigest(diff_id=sink.diff_id, size=sink.size, stats=stats, empty=empty)
