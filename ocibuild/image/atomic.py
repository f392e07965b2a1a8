"""Atomic file writes: temp file in the same dir -> fsync -> rename."""

from __future__ import annotations

import contextlib
import os
import tempfile


def unlink_quiet(path: str) -> None:
    """Remove a file; a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(
    path: str,
    data: bytes,
    *,
    sync_dir: bool = False,
    tmp_dir: str | None = None,
    mode: int = 0o644,
) -> None:
    """Replace ``path`` with ``data`` (``mode``: 0644 for an export, 0600 in the store);
    readers see the old or the new content.

    The temp file goes next to ``path`` unless ``tmp_dir`` (same filesystem) is given.
    """
    directory = os.path.dirname(path) or "."
    prefix = ".tmp-" if tmp_dir is None else "store-blob-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=tmp_dir or directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        unlink_quiet(tmp)
        raise
    if sync_dir:
        fsync_dir(directory)
