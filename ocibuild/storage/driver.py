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
