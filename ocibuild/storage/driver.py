"""Storage drivers: prepare a rootfs from layers, hand back the changes.

Every driver turns a list of layer dirs (top-most first, in the store's lower-dir form)
into a handle with ``target`` (the rootfs the step works in) and ``upper`` (where the
changes are, in overlay upper-dir form, once :func:`changes` was called or the handle was
left). The layer engine then hashes ``upper`` and the store moves it in as a new layer.

* ``overlay``: kernel overlayfs (``userxattr`` inside a user namespace);
* ``fuse-overlayfs``: the FUSE implementation (:mod:`ocibuild.storage.fuse_overlay`);
* ``vfs``: a full copy, diffed against a snapshot (:mod:`ocibuild.storage.vfs`).

The store's lower-dir form is one: deletions are character devices 0/0, opaque dirs carry
``trusted.overlay.opaque=y`` (``user.overlay.opaque=y`` in a user namespace, where
trusted.* is out of reach). What fuse-overlayfs writes its own ways (``.wh.`` files,
``user.fuseoverlayfs.opaque``, ``.wh..wh..opq``) is converted to that form before a layer
is committed, so any driver can use any stored layer as a lower dir.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

from ocibuild.errors import OcibuildError
from ocibuild.layers import whiteout as wh
from ocibuild.runtime.idmap import in_user_namespace

DRIVERS = ("overlay", "fuse-overlayfs", "vfs")

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


# Active handles by the path they expose as ``upper`` (for :func:`changes`).
_ACTIVE: dict[str, Rootfs] = {}


def register(handle: Rootfs) -> None:
    _ACTIVE[handle.upper] = handle


def unregister(handle: Rootfs) -> None:
    for key in [k for k, v in _ACTIVE.items() if v is handle]:
        del _ACTIVE[key]


def changes(upper: str) -> str:
    """The step's changes in upper-dir form, for the ``upper`` a handle exposed.

    For overlay that is the upper dir itself; for fuse-overlayfs the upper dir in the
    store's form; for vfs the diff against the snapshot, materialised in a new dir.
    """
    handle = _ACTIVE.get(upper)
    return handle.changes() if handle is not None else upper


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


def prepare(driver: str, lowers: Sequence[str], work: str) -> Rootfs:
    """An unmounted handle for ``driver`` over ``lowers`` (top-most first) in ``work``."""
    if driver == "vfs":
        from ocibuild.storage.vfs import prepare_vfs

        return prepare_vfs(lowers, work)
    from ocibuild.storage.overlay import prepare_rootfs

    if driver == "fuse-overlayfs":
        from ocibuild.storage.fuse_overlay import FuseOverlayMount

        base = prepare_rootfs(lowers, work)
        return FuseOverlayMount(list(base.lowers), base.upper, base.work, base.target)
    if driver == "overlay":
        return prepare_rootfs(lowers, work, extra_opts=kernel_overlay_opts())
    raise OcibuildError(
        f"unknown storage driver {driver!r}", hint=f"use one of: {', '.join(DRIVERS)}"
    )


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split(".")
    try:
        return (int(release[0]), int(release[1].split("-")[0])) >= (major, minor)
    except (IndexError, ValueError):
        return False


def kernel_overlay_opts() -> str:
    """Extra kernel overlay options: ``userxattr`` in a user namespace, and ``volatile``
    (5.10+): the upper dir is scratch until the layer engine has hashed it, so the
    sync of the whole upper filesystem at every unmount (4-20 ms a step) buys nothing."""
    opts = ["userxattr"] if in_user_namespace() else []
    if _kernel_at_least(5, 10):
        opts.append("volatile")
    return ",".join(opts)


def probe_kernel_overlay(scratch: str) -> str:
    """Mount a tiny kernel overlay under ``scratch``: "" if it works, else why not."""
    from ocibuild.storage.overlay import prepare_rootfs

    os.makedirs(scratch, exist_ok=True)
    probe = os.path.join(scratch, f"overlay-probe-{os.getpid()}")
    try:
        os.makedirs(os.path.join(probe, "lower"), exist_ok=True)
        mount = prepare_rootfs([os.path.join(probe, "lower")], os.path.join(probe, "t"))
        mount.extra_opts = kernel_overlay_opts()
        with mount:
            pass
        return ""
    except OSError as exc:
        return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
    finally:
        import shutil

        shutil.rmtree(probe, ignore_errors=True)
