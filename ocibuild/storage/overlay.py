"""Kernel overlayfs mounts for RUN steps.

The lower dirs are read-only layers, the upper dir receives exactly the step's changes
(deletions as 0/0 character devices), and the merged dir is the container's rootfs.
Mounts are made in the build process's private mount namespace (see
:func:`ensure_mount_namespace`), so they never show up on the host and die with it. The
merged dir is mounted ``nodev`` (:func:`base.remount_nodev`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from types import TracebackType

from ocibuild import _native
from ocibuild._record import dataclass, field
from ocibuild.storage.base import remount_nodev
from ocibuild.storage.samedirent import prune_unchanged


def ensure_mount_namespace() -> None:
    """Enter the private mount namespace once per process (no-op afterwards)."""
    _native.enter_mount_namespace()


@dataclass
class OverlayMount:
    """An overlay mount on ``target``; a context manager that unmounts on any exit.

    ``lowers`` are top-most first (overlayfs order) and must not be empty.
    """

    lowers: Sequence[str]
    upper: str
    work: str
    target: str
    extra_opts: str = ""
    private_namespace: bool = True
    mounted: bool = field(default=False, init=False)

    def describe(self) -> str:
        opts = "redirect_dir=off,metacopy=off,index=off"
        if "userxattr" in self.extra_opts:
            opts = opts.replace("redirect_dir=off", "redirect_dir=nofollow")
        if self.extra_opts:
            opts += "," + self.extra_opts
        lowers = ":".join(self.lowers)
        return (
            f"mount -t overlay overlay -o lowerdir={lowers},upperdir={self.upper},"
            f"workdir={self.work},{opts} {self.target}"
        )

    def mount(self) -> None:
        if self.mounted:
            return
        if not self.lowers:
            raise OSError(errno.EINVAL, "mount overlay: no lower directory given", self.target)
        if self.private_namespace:
            ensure_mount_namespace()
        _native.mount_overlay(self.lowers, self.upper, self.work, self.target, self.extra_opts)
        self.mounted = True
        try:
            remount_nodev(self.target)
        except BaseException:
            self.unmount()
            raise

    def changes(self) -> str:
        """The upper dir: kernel overlay writes the store's lower-dir form already."""
        return self.upper

    def unmount(self) -> None:
        """Unmount; fall back to a lazy detach when the mount is still busy."""
        if not self.mounted:
            return
        try:
            _native.umount(self.target)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # already gone (someone else unmounted it)
                self.mounted = False
                return
            _native.umount(self.target, detach=True)
        self.mounted = False
        prune_unchanged(self.upper, self.lowers)  # as BuildKit's differ (storage.samedirent)

    def __enter__(self) -> OverlayMount:
        self.mount()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.unmount()
        except BaseException:
            # A second interrupt while unmounting: still try the lazy detach.
            if self.mounted:
                _native.umount(self.target, detach=True)
                self.mounted = False
            if exc is None:
                raise


def prepare_rootfs(lowers: Sequence[str], tmp_root: str, *, extra_opts: str = "") -> OverlayMount:
    """Create fresh ``upper``, ``work`` and ``merged`` dirs under ``tmp_root``.

    Returns an unmounted :class:`OverlayMount` (use it as a context manager). With no
    lowers (``FROM scratch``) an empty ``lower`` dir is created and used.
    """
    os.makedirs(tmp_root, exist_ok=True)
    dirs = {name: os.path.join(tmp_root, name) for name in ("upper", "work", "merged")}
    for path in dirs.values():
        os.mkdir(path, 0o755)
    lower_list = list(lowers)
    if not lower_list:
        empty = os.path.join(tmp_root, "lower")
        os.mkdir(empty, 0o755)
        lower_list = [empty]
    # The merged root takes the upper dir's owner and mode: mirror the top layer's root.
    top = os.stat(lower_list[0])
    os.chown(dirs["upper"], top.st_uid, top.st_gid)
    os.chmod(dirs["upper"], top.st_mode & 0o7777)
    return OverlayMount(
        lowers=lower_list,
        upper=dirs["upper"],
        work=dirs["work"],
        target=dirs["merged"],
        extra_opts=extra_opts,
    )
