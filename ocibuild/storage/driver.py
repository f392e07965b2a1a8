"""Storage drivers: prepare a rootfs from layers, hand back the changes.

Every driver turns a list of layer dirs (top-most first, in the store's lower-dir form)
into a handle with ``target`` (the rootfs the step works in) and ``upper`` (where the
changes are, in overlay upper-dir form, once the handle was left). The layer engine then
hashes ``upper`` and the store moves it in as a new layer. What the drivers share is in
:mod:`ocibuild.storage.base`; this module only picks one.

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
from collections.abc import Sequence

from ocibuild.errors import OcibuildError
from ocibuild.fs.idmap import in_user_namespace
from ocibuild.storage.base import Rootfs

DRIVERS = ("overlay", "fuse-overlayfs", "vfs")


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
    """Mount a tiny kernel overlay under ``scratch``: "" if it works, else why not.

    The answer is remembered in ``scratch`` for this boot, file system, user and user
    namespace (a mount and two unmounts, 3-4 ms, were a tenth of a fully cached
    rebuild); a kernel that changes its mind within a boot shows in the first RUN's
    mount error instead."""
    memo = os.path.join(scratch, MEMO_NAME)
    key = _probe_key(scratch)
    if not key:  # nothing to key it on: probe every time
        return _probe(scratch)
    try:
        with open(memo, encoding="utf-8") as f:
            known, _, answer = f.read().partition("\n")
        if known == key:
            return answer
    except (OSError, ValueError):
        pass
    answer = _probe(scratch)
    from ocibuild.fs.atomic import write_atomic

    with contextlib.suppress(OSError):
        write_atomic(memo, f"{key}\n{answer}", mode=0o600, durable=False)
    return answer


MEMO_NAME = ".overlay-probe"


def _probe_key(scratch: str) -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
        with open("/proc/self/uid_map", encoding="ascii") as f:  # the user namespace's
            userns = " ".join(f.read().split())  # mapping, the same for every rootless run
        os.makedirs(scratch, exist_ok=True)
        dev = os.stat(scratch).st_dev
    except OSError:
        return ""
    return f"{boot} {dev} {os.geteuid()} {userns} {kernel_overlay_opts()}"


def _probe(scratch: str) -> str:
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
