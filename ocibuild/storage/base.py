"""What every storage driver shares: the :class:`Rootfs` handle type, the ``nodev``
remount of a rootfs, and the store's upper-dir form (whiteouts, opaque dirs) with the
rewrite of fuse-overlayfs's own forms into it. The drivers (overlay, fuse_overlay, vfs)
import this module; :mod:`ocibuild.storage.driver` picks one of them."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

from ocibuild.fs import whiteout as wh
from ocibuild.fs.idmap import in_user_namespace

# mount(2) flags (sys/mount.h) and the statvfs flags that report them.
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 0x20, 0x400, 0x800, 0x1000
MS_RELATIME = 0x200000
_KEPT_FLAGS = (
    (os.ST_RDONLY, MS_RDONLY),
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)


def remount_nodev(target: str) -> None:
    """Make the mount on ``target`` ``nodev``, keeping its other per-mount flags.

    Every rootfs a RUN step gets is nodev: a device node the step creates with
    CAP_MKNOD (kept as Docker keeps it) can never be opened, whether or not the runtime
    enforces a device cgroup (crun here does not). Flags the kernel locked (in a user
    namespace) are kept, since the remount must repeat them.
    """
    from ocibuild import _native

    current = os.statvfs(target).f_flag
    flags = MS_REMOUNT | MS_BIND | MS_NODEV
    for st_flag, ms_flag in _KEPT_FLAGS:
        if current & st_flag:
            flags |= ms_flag
    _native.mount_fs("", target, "", flags)


class Rootfs(Protocol):
    """What :func:`prepare` returns; a context manager that mounts/unmounts."""

    target: str
    upper: str

    def describe(self) -> str: ...
    def changes(self) -> str: ...
    def __enter__(self) -> Rootfs: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def opaque_xattr() -> str:
    return "user.overlay.opaque" if in_user_namespace() else wh.OPAQUE_XATTR


def make_whiteout(path: str) -> None:
    """A deletion marker in lower-dir form (a ``.wh.`` file where mknod is refused)."""
    try:
        os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))
    except PermissionError:
        parent, name = os.path.split(path)
        with open(os.path.join(parent, wh.whiteout_name(name)), "wb"):
            pass


def set_opaque(path: str) -> None:
    os.setxattr(path, opaque_xattr(), b"y", follow_symlinks=False)


FUSE_OPAQUE_DEVICE = ".wh..opq"


def _is_whiteout_dev(path: str) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _in_lowers(rel: str, lowers: Sequence[str]) -> bool:
    for lower in lowers:
        try:
            st = os.lstat(os.path.join(lower, rel))
        except OSError:
            continue
        return not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
    return False


def canonicalize(upper: str, lowers: Sequence[str] = ()) -> None:
    """Rewrite fuse-overlayfs's whiteout and opaque forms into the store's form.

    fuse-overlayfs marks every directory it creates opaque; kernel overlay only one that
    hides something below. A marker on a dir no lower holds is dropped (it hides nothing),
    so both drivers give the same layer.
    """
    target_xattr = opaque_xattr()
    for dirpath, _dirnames, filenames in os.walk(upper):
        names = os.listxattr(dirpath, follow_symlinks=False)
        opaque = wh.OPAQUE_MARKER in filenames
        fuse_marker = os.path.join(dirpath, FUSE_OPAQUE_DEVICE)
        if FUSE_OPAQUE_DEVICE in filenames and _is_whiteout_dev(fuse_marker):
            os.unlink(fuse_marker)  # fuse-overlayfs's other opaque marker
            filenames.remove(FUSE_OPAQUE_DEVICE)
            opaque = True
        for name in names:
            if name in wh.OPAQUE_XATTRS and name != target_xattr:
                value = os.getxattr(dirpath, name, follow_symlinks=False)
                opaque = opaque or wh.is_opaque_value(value)
                os.removexattr(dirpath, name, follow_symlinks=False)
        rel = os.path.relpath(dirpath, upper)
        if opaque or target_xattr in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(dirpath, wh.OPAQUE_MARKER))
            needed = dirpath != upper and _in_lowers(rel, lowers)
            if needed:
                os.setxattr(dirpath, target_xattr, b"y", follow_symlinks=False)
            elif target_xattr in names:
                os.removexattr(dirpath, target_xattr, follow_symlinks=False)
        for name in filenames:
            if name == wh.OPAQUE_MARKER or not wh.is_whiteout_name(name):
                continue
            path = os.path.join(dirpath, name)
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            target = os.path.join(dirpath, wh.whiteout_target(name))
            try:
                os.mknod(target, stat.S_IFCHR, os.makedev(0, 0))
            except FileExistsError:
                pass
            except PermissionError:
                continue  # keep the .wh. form: the layer engine reads it too
            os.unlink(path)


def kept_xattrs(path: str) -> list[tuple[str, bytes]]:
    """The xattrs of ``path`` a layer keeps (sorted; none where xattrs are unsupported)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return []
        raise
    out = []
    for name in sorted(names):
        if wh.is_kept_xattr(name):
            with contextlib.suppress(OSError):
                out.append((name, os.getxattr(path, name, follow_symlinks=False)))
    return out
