"""Drop from an upper dir what did not change against the lower layers (BuildKit's rule).

A storage driver's upper dir may hold entries that are the same as in the layers below:
kernel overlay copies a file up when its hardlink partner gets a new link, fuse-overlayfs
when a partner is removed, vfs sees a new ctime when only the link count moved, and COPY
may rewrite a file with the same content and times. BuildKit's overlay differ
(``util/overlay/overlay_linux.go``, ``sameDirent``, from containerd's continuity) leaves
such entries out of the layer. So do we, for every driver, so one Dockerfile gives one
digest whichever driver built it, and the digest BuildKit's differ gives:

* an entry is the same as the lower one when type and permission bits, owner, device
  number and the kept xattrs (``security.capability``, ``user.*``) are equal and, for a
  non-directory, size and mtime seconds are equal and either both mtimes have
  nanoseconds that are equal and non-zero, or (both truncated to the second, as after a
  tar) the symlink targets or the contents are equal;
* a directory is left out when it is the same and nothing below it is left (a
  directory's mtime is not compared: it only says that entries came or went);
* entries below an opaque directory are all kept (the directory replaced the lower one).

The link count and ctime are never compared: a file whose only change is its link count
is not part of the layer (BuildKit v0.11.6 observed: ``ln a b`` then ``rm a`` in a later
step gives a layer with the whiteout only).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence

from ocibuild.fs import whiteout as wh
from ocibuild.storage.base import kept_xattrs

_CHUNK = 1 << 20


def _is_whiteout(st: os.stat_result, name: str) -> bool:
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    return stat.S_ISREG(st.st_mode) and wh.is_whiteout_name(name)


def _is_opaque(path: str) -> bool:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return False
    for name in names:
        if name in wh.OPAQUE_XATTRS:
            with contextlib.suppress(OSError):
                if wh.is_opaque_value(os.getxattr(path, name, follow_symlinks=False)):
                    return True
    return os.path.lexists(os.path.join(path, wh.OPAQUE_MARKER))


def _below(
    bases: Sequence[tuple[str, frozenset[str]]], name: str
) -> list[tuple[str, os.stat_result]]:
    """The entries ``name`` has in the lower dirs ``bases`` (top-most first, each with
    its listing), down to the first that hides the rest: a deletion (then none), a
    non-directory or an opaque dir."""
    out: list[tuple[str, os.stat_result]] = []
    marker = wh.whiteout_name(name)
    for base, names in bases:
        if name not in names:
            if marker in names:
                break
            continue
        path = os.path.join(base, name)
        st = os.lstat(path)
        if _is_whiteout(st, name):
            break
        out.append((path, st))
        if not stat.S_ISDIR(st.st_mode) or _is_opaque(path):
            break
    return out


def _listing(dirs: Sequence[str]) -> list[tuple[str, frozenset[str]]]:
    return [(d, frozenset(os.listdir(d))) for d in dirs]


def _same_content(a: str, b: str) -> bool:
    fa = os.open(a, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fb = os.open(b, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            while True:
                ca, cb = os.read(fa, _CHUNK), os.read(fb, _CHUNK)
                if ca != cb:
                    return False
                if not ca:
                    return True
        finally:
            os.close(fb)
    finally:
        os.close(fa)


def same_dirent(lower: str, lst: os.stat_result, upper: str, ust: os.stat_result) -> bool:
    """BuildKit's ``sameDirent`` (plus the ``user.*`` xattrs we keep in layers)."""
    if (lst.st_mode, lst.st_uid, lst.st_gid, lst.st_rdev) != (
        ust.st_mode,
        ust.st_uid,
        ust.st_gid,
        ust.st_rdev,
    ):
        return False
    if not stat.S_ISLNK(ust.st_mode) and kept_xattrs(lower) != kept_xattrs(upper):
        return False
    if stat.S_ISDIR(ust.st_mode):
        return True
    if lst.st_size != ust.st_size or lst.st_mtime_ns // 10**9 != ust.st_mtime_ns // 10**9:
        return False
    lns, uns = lst.st_mtime_ns % 10**9, ust.st_mtime_ns % 10**9
    if lns == 0 and uns == 0:
        if stat.S_ISLNK(ust.st_mode):
            return os.readlink(lower) == os.readlink(upper)
        if stat.S_ISREG(ust.st_mode) and ust.st_size:
            return _same_content(lower, upper)
        return True
    return lns == uns


def prune_unchanged(upper: str, lowers: Sequence[str]) -> int:
    """Remove from ``upper`` the entries that are the same as in ``lowers`` (top-most
    first); returns how many were removed. Only directories the lowers also hold are
    walked: below a new or opaque directory everything is new."""
    return _prune_dir(upper, _listing(lowers)) if lowers else 0


def _prune_dir(host_dir: str, bases: list[tuple[str, frozenset[str]]]) -> int:
    removed = 0
    with os.scandir(host_dir) as it:
        entries = list(it)
    for entry in entries:
        below = _below(bases, entry.name)
        if not below:
            continue  # new here (no stat: most entries of a big step are new)
        ust = entry.stat(follow_symlinks=False)
        if _is_whiteout(ust, entry.name):
            continue
        base, bst = below[0]
        if stat.S_ISDIR(ust.st_mode):
            if _is_opaque(entry.path) or not stat.S_ISDIR(bst.st_mode):
                continue
            below_dirs = [p for p, st in below if stat.S_ISDIR(st.st_mode)]
            removed += _prune_dir(entry.path, _listing(below_dirs))
            if not os.listdir(entry.path) and same_dirent(base, bst, entry.path, ust):
                os.rmdir(entry.path)
                removed += 1
        elif same_dirent(base, bst, entry.path, ust):
            os.unlink(entry.path)
            removed += 1
    return removed
