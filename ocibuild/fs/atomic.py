"""Atomic file writes: the one way ocibuild replaces a file.

Every write goes to a temp file (``mkstemp``: created 0600, never followed through a
symlink) in the target's directory, or in ``tmp_dir`` on the same filesystem, and is
renamed over the target: a reader sees the old content or the new, never a part. A writer
that raises (or a stage that is never committed) leaves the old file and no temp file.

The fsync rule, one for every caller:

* ``durable=True`` (the default: the store, exports, registry credentials, the download
  cache, output files a user asked for): the temp file is fsynced before the rename and
  the target's directory after it, so once the call returns the new content survives a
  power cut.
* ``durable=False`` (caches and records that only save work or explain: the step cache,
  the stat cache, explain and build records, ``--trace``, a RUN's bundle): no fsync at
  all. A crash may lose the new content (the old file, or none, is left) but still never
  shows a torn file to a reader; their readers treat a missing or unreadable file as
  absent.

The file gets ``mode`` (chmod after the write, so the umask does not apply) before it
becomes visible. A process killed mid-write (SIGKILL) leaves its temp file behind: the
store's ``tmp/`` is swept by age (:meth:`ocibuild.image.store.Store.gc`), other
directories keep a ``.tmp-*`` file that nothing reads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

TMP_PREFIX = ".tmp-"


def unlink_quiet(path: str) -> None:
    """Remove a file; a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def fsync_dir(directory: str) -> None:
    """Make a rename (or a create, an unlink) in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedFile:
    """An open temp file that becomes a named file on :meth:`commit`; until then no
    reader sees it. :func:`staged_file` removes it if it was not committed."""

    def __init__(self, file: BinaryIO, tmp: str, *, mode: int, durable: bool) -> None:
        self.file = file
        self.tmp = tmp
        self.mode = mode
        self.durable = durable
        self.committed = False

    def commit(self, path: str, *, replace: bool = True) -> bool:
        """Publish the content as ``path`` (the fsync rule of this module). With
        ``replace=False`` an existing ``path`` is kept (content-addressed files: the
        other copy is identical) and the temp file dropped; returns whether ``path`` was
        written."""
        if self.committed:
            raise ValueError(f"{self.tmp} was committed already")
        self.file.flush()
        if self.durable:
            os.fsync(self.file.fileno())
        self.file.close()
        if not replace and os.path.exists(path):
            self.discard()
            return False
        os.chmod(self.tmp, self.mode)
        os.rename(self.tmp, path)
        self.committed = True
        if self.durable:
            fsync_dir(os.path.dirname(os.path.abspath(path)))
        return True

    def discard(self) -> None:
        """Close and remove the temp file (nothing happens after a commit)."""
        if self.committed:
            return
        self.file.close()
        unlink_quiet(self.tmp)


def mkstemp(directory: str, prefix: str = TMP_PREFIX) -> tuple[int, str]:
    """``tempfile.mkstemp(prefix=prefix, dir=directory)`` (a new file, mode 0600, opened
    read-write), without importing ``tempfile`` and ``random`` on every start-up."""
    for _ in range(100):
        path = os.path.join(directory, prefix + os.urandom(6).hex())
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")  # pragma: no cover


@contextmanager
def staged_file(
    directory: str, *, mode: int = 0o644, durable: bool = True, prefix: str = TMP_PREFIX
) -> Iterator[StagedFile]:
    """A temp file in ``directory`` for content whose name is known only once it is
    written (a digest): call :meth:`StagedFile.commit` inside the block; leaving the block
    without a commit, or by an exception, removes the temp file."""
    fd, tmp = mkstemp(directory, prefix)
    staged = StagedFile(os.fdopen(fd, "wb"), tmp, mode=mode, durable=durable)
    try:
        yield staged
    finally:
        staged.discard()


@contextmanager
def atomic_file(
    path: str,
    *,
    mode: int = 0o644,
    durable: bool = True,
    tmp_dir: str | None = None,
    prefix: str = TMP_PREFIX,
) -> Iterator[BinaryIO]:
    """Write ``path`` through a binary stream: it is replaced when the block ends, and
    left as it was if the block raises."""
    directory = tmp_dir or os.path.dirname(os.path.abspath(path))
    with staged_file(directory, mode=mode, durable=durable, prefix=prefix) as staged:
        yield staged.file
        staged.commit(path)


def write_atomic(
    path: str,
    data: bytes | str,
    *,
    mode: int = 0o644,
    durable: bool = True,
    tmp_dir: str | None = None,
    prefix: str = TMP_PREFIX,
) -> None:
    """Replace ``path`` with ``data`` (a ``str`` is written as UTF-8)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_file(path, mode=mode, durable=durable, tmp_dir=tmp_dir, prefix=prefix) as f:
        f.write(raw)
