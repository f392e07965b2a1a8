"""Per-process scratch space inside the store."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from contextlib import ExitStack

from ocibuild.image.store import Store, private_dir


class Scratch:
    """A scratch dir in the store's tmp/, locked while its owner lives.

    Dirs whose lock is free belong to processes that died: the next one reaps them.
    """

    def __init__(self, store: Store, prefix: str = "build-") -> None:
        self._in_use = ExitStack()
        self._in_use.enter_context(store.in_use())  # keeps `prune --all` off our layers
        base = private_dir(os.path.join(store.root, "tmp"))
        self.reap(base)
        # Lock before the dir gets its visible name, so a reaper never sees it unlocked.
        init = _mkdtemp(base, ".init-")
        self._lock = os.open(os.path.join(init, ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.path = os.path.join(base, prefix + os.path.basename(init)[len(".init-") :])
        os.rename(init, self.path)

    @staticmethod
    def reap(base: str) -> None:
        """Remove scratch dirs of builds that died (their lock is free)."""
        for name in os.listdir(base):
            path = os.path.join(base, name)
            lock = os.path.join(path, ".lock")
            if name.startswith(".init-"):
                if time.time() - os.lstat(path).st_mtime > 60:
                    shutil.rmtree(path, ignore_errors=True)
                continue
            if not os.path.exists(lock):
                continue
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            finally:
                os.close(fd)
            shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock)
        self._in_use.close()


def _mkdtemp(base: str, prefix: str) -> str:
    """``tempfile.mkdtemp(prefix=prefix, dir=base)`` (mode 0700), without importing
    ``tempfile`` and ``random`` on every start-up."""
    while True:
        path = os.path.join(base, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
