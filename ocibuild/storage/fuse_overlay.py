"""fuse-overlayfs mounts: the overlay driver's FUSE implementation.

Used when the kernel refuses overlayfs (old kernels in a user namespace, upper dirs on
filesystems overlayfs rejects) or when asked for with ``--storage-driver fuse-overlayfs``.
The daemon runs in the foreground as our child (it dies with us: parent-death signal) in
the build's private mount namespace, and the mount is made ``nodev``. It marks deletions
and opaque dirs its own ways
(``.wh.`` files, ``user.fuseoverlayfs.opaque``, ``.wh..wh..opq``); :meth:`changes`
rewrites them into the store's lower-dir form once the step is done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from types import TracebackType

from ocibuild import _native, interrupts
from ocibuild._record import dataclass, field
from ocibuild.errors import OcibuildError
from ocibuild.storage import base
from ocibuild.storage.overlay import ensure_mount_namespace
from ocibuild.storage.samedirent import prune_unchanged

BINARY = "fuse-overlayfs"
_MOUNT_TIMEOUT = 10.0


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def _pdeathsig() -> None:
    _native.set_pdeathsig(signal.SIGKILL)


@dataclass
class FuseOverlayMount:
    lowers: Sequence[str]
    upper: str
    work: str
    target: str
    binary: str = BINARY
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    done: bool = field(default=False, init=False)

    def options(self) -> str:
        return (
            f"lowerdir={':'.join(_escape(p) for p in self.lowers)},"
            f"upperdir={_escape(self.upper)},workdir={_escape(self.work)}"
        )

    def command(self) -> list[str]:
        return [self.binary, "-f", "-o", self.options(), self.target]

    def describe(self) -> str:
        return " ".join(self.command())

    def mount(self) -> None:
        if self.proc is not None:
            return
        if shutil.which(self.binary) is None:
            raise OcibuildError(
                "fuse-overlayfs is not installed",
                hint="apt-get install -y fuse-overlayfs (or use --storage-driver vfs)",
            )
        ensure_mount_namespace()
        before = os.stat(self.target).st_dev
        log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for the daemon's life)
        with interrupts.deferred():  # no Ctrl-C/SIGTERM lost in the fork's at-fork hooks
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                close_fds=True,
                preexec_fn=_pdeathsig,
            )
        deadline = time.monotonic() + _MOUNT_TIMEOUT
        while os.stat(self.target).st_dev == before:
            rc = self.proc.poll()
            if rc is not None or time.monotonic() > deadline:
                self._stop()
                log.seek(0)
                text = log.read().decode(errors="replace").strip().replace("\n", "; ")
                raise OcibuildError(
                    f"fuse-overlayfs failed to mount {self.target}: {text or 'timed out'}",
                    hint="check /dev/fuse access (`ocibuild doctor`), "
                    "or use --storage-driver overlay or vfs",
                )
            time.sleep(0.005)
        log.close()
        try:
            base.remount_nodev(self.target)
        except BaseException:
            with contextlib.suppress(OSError):
                _native.umount(self.target, detach=True)
            self._stop()
            raise

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def unmount(self) -> None:
        if self.proc is None:
            return
        try:
            _native.umount(self.target)
        except OSError:
            with contextlib.suppress(OSError):
                _native.umount(self.target, detach=True)
        self._stop()
        self.changes()

    def changes(self) -> str:
        if not self.done:
            base.canonicalize(self.upper, self.lowers)
            # fuse-overlayfs copies a file up when a hardlink partner is removed
            prune_unchanged(self.upper, self.lowers)
            self.done = True
        return self.upper

    def __enter__(self) -> FuseOverlayMount:
        self.mount()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unmount()
