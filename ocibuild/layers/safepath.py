"""Path handling that never leaves a root directory.

``resolve_in_root`` is a pure-Python port of the idea behind Go's ``securejoin``: the
path is walked component by component, each existing symlink is read and its target spliced
in (absolute targets restart at ``root``), and ``..`` never climbs above ``root`` - the
same view a process chrooted into ``root`` would have. It resolves with ``lstat``/
``readlink``, so it assumes nothing else renames entries under ``root`` meanwhile (true of
a build's private rootfs).
"""

from __future__ import annotations

import errno
import os
import stat

from ocibuild.errors import LayerError

MAX_SYMLINKS = 255


def split_member_name(name: str) -> list[str]:
    """The components of a tar member name, made relative; ``..`` raises LayerError.

    ``/a//b/./c/`` -> ``["a", "b", "c"]``; the archive root (``./``) gives ``[]``.
    """
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(
            f"archive entry {name!r} contains '..'",
            hint="the archive tries to write outside its destination; it is rejected",
        )
    return parts


def resolve_in_root(root: str, path: str, *, max_symlinks: int = MAX_SYMLINKS) -> str:
    """The host path of ``path`` as seen from inside ``root`` (all symlinks resolved).

    Components that do not exist are appended as they are, so the result can name an entry
    that is yet to be created. The result always lies inside ``root``. Too many symlinks
    raise :class:`LayerError` (ELOOP).
    """
    root = os.path.abspath(root)
    pending = [p for p in reversed(path.split("/")) if p not in ("", ".")]
    current: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = [*current, part]
        full = os.path.join(root, *candidate)
        try:
            st = os.lstat(full)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise LayerError(f"cannot resolve {path!r} in {root}: {e}") from e
            current = candidate
            continue
        if not stat.S_ISLNK(st.st_mode):
            current = candidate
            continue
        links += 1
        if links > max_symlinks:
            raise LayerError(f"too many levels of symbolic links resolving {path!r} in {root}")
        target = os.readlink(full)
        if target.startswith("/"):
            current = []
        pending.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
    return os.path.join(root, *current) if current else root
