"""Resolve and open paths *inside* a root directory, the way a container would see them.

``secure_join`` is a pure-Python resolver (symlinks and ``..`` clamped to the root, like
filepath-securejoin); ``open_in_root`` prefers the kernel's openat2(RESOLVE_IN_ROOT) and
falls back to ``secure_join`` + ``O_NOFOLLOW`` when openat2 is missing.
"""

from __future__ import annotations

import errno
import os
import stat

from ocibuild import _native

MAX_SYMLINKS = 255


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def resolve_in_root(root: str, unsafe: str) -> str:
    """Return the root-relative path (no leading '/') ``unsafe`` designates inside ``root``.

    Symlinks are followed with ``root`` as ``/``; ``..`` never climbs above it. Components
    that do not exist are appended literally (so the result may not exist).
    """
    todo = _parts(unsafe)
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            done.append(part)  # missing: the rest is taken literally (``..`` still pops)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", unsafe)
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo = _parts(target) + todo
            continue
        done.append(part)
    return "/".join(done)


def secure_join(root: str, unsafe: str) -> str:
    """``root`` joined with :func:`resolve_in_root` of ``unsafe`` (a host path)."""
    rel = resolve_in_root(root, unsafe)
    return os.path.join(root, rel) if rel else root


def open_in_root(root: str, path: str, flags: int, mode: int = 0o644) -> int:
    """Open ``path`` as seen from inside ``root``; returns an fd the caller closes."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            return _native.open_in_root(root_fd, path.lstrip("/") or ".", flags, mode)
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise
        # No openat2: resolve in Python, refuse a final symlink swapped in meanwhile.
        return os.open(secure_join(root, path), flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    finally:
        os.close(root_fd)
