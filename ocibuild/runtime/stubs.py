"""Mount-point stubs: what the runtime creates in the rootfs only to mount over it.

runc creates a missing mount destination (and its missing parents) in the merged rootfs
before mounting: /proc, /sys, /dev, /etc/hosts, /etc/resolv.conf, even /etc itself on a
``FROM scratch`` image. Those land in the overlay upper dir and must not reach the layer.
As BuildKit does (executor/stubs.go): note what is missing before the run, and afterwards
delete what is still an empty file or empty dir, deepest first, keeping the parent's
timestamps. A stub the step filled (a file written into a created /etc) stays.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Sequence

from ocibuild.layers.whiteout import WHITEOUT_PREFIX
from ocibuild.storage.rootpath import resolve_in_root


def find_missing(rootfs: str, destinations: Iterable[str]) -> list[str]:
    """Root-relative paths (no leading '/') the runtime would have to create.

    Each destination is resolved inside ``rootfs`` (symlinks clamped to it); the first
    missing component and everything below it are reported. Sorted, deduplicated.
    """
    missing: set[str] = set()
    for dest in destinations:
        rel = resolve_in_root(rootfs, dest)
        if not rel:
            continue
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            if not os.path.lexists(os.path.join(rootfs, *parts[:i])):
                missing.update("/".join(parts[:j]) for j in range(i, len(parts) + 1))
                break
    return sorted(missing)


def _is_empty_stub(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if stat.S_ISDIR(st.st_mode):
        try:
            # fuse-overlayfs marks every dir it creates opaque (files, 0/0 devices)
            return not [n for n in os.listdir(path) if not n.startswith(WHITEOUT_PREFIX)]
        except OSError:
            return False
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def remove_stubs(upper_dir: str, missing: Sequence[str]) -> list[str]:
    """Delete the still-empty stubs among ``missing`` from ``upper_dir``; returns them."""
    removed: list[str] = []
    for rel in sorted(missing, key=lambda p: (-p.count("/"), p)):
        path = os.path.join(upper_dir, rel)
        if not _is_empty_stub(path):
            continue
        parent = os.path.dirname(path)
        pst = os.stat(parent)
        if stat.S_ISDIR(os.lstat(path).st_mode):
            for name in os.listdir(path):  # only opaque markers are left
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(path, name))
            os.rmdir(path)
        else:
            os.unlink(path)
        os.utime(parent, ns=(pst.st_atime_ns, pst.st_mtime_ns))
        removed.append(rel)
    return removed


def existing_parents(rootfs: str, missing: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Dirs that exist in the rootfs and will get a stub created in them: rel -> (mode,
    uid, gid) before the run. Creating the stub copies them up into the upper dir."""
    out: dict[str, tuple[int, int, int]] = {}
    missing_set = set(missing)
    for rel in missing:
        parent = os.path.dirname(rel)
        while parent and parent not in missing_set and parent not in out:
            st = os.lstat(os.path.join(rootfs, parent))
            out[parent] = (st.st_mode, st.st_uid, st.st_gid)
            parent = os.path.dirname(parent)
    return out


def remove_copied_up_parents(upper_dir: str, parents: dict[str, tuple[int, int, int]]) -> None:
    """Drop dirs from ``upper_dir`` that were copied up only to hold a stub: still empty,
    not opaque, same mode and owner as before the run (deepest first)."""
    for rel in sorted(parents, key=lambda p: (-p.count("/"), p)):
        path = os.path.join(upper_dir, rel)
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or os.listdir(path):
                continue
            if any("opaque" in name for name in os.listxattr(path, follow_symlinks=False)):
                continue
        except OSError:
            continue
        if (st.st_mode, st.st_uid, st.st_gid) == parents[rel]:
            os.rmdir(path)
