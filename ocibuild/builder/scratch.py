"""Per-process scratch space inside the store."""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from contextlib import ExitStack

from ocibuild.image.store import Store, private_dir


class Scratch:
    """A scratch dir in the store's tmp/, locked while its owner lives.

    Dirs whose lock is free belong to processes that died: the next one reaps them.
    ``lazy``: ``path`` is named now and made by the first :meth:`ensure` (a build whose
    steps are all cache hits makes none: on a slow disk, a directory, a lock file and a
    rename, then their removal, are a few ms of a 0.1 s rebuild).
    """

    def __init__(self, store: Store, prefix: str = "build-", *, lazy: bool = False) -> None:
        self._in_use = ExitStack()
        self._in_use.enter_context(store.in_use())  # keeps `prune --all` off our layers
        self._base = base = private_dir(os.path.join(store.root, "tmp"))
        self.reap(base)
        self._name = os.urandom(6).hex()
        self.path = os.path.join(base, prefix + self._name)
        self._lock = -1
        self._making = threading.Lock()
        if not lazy:
            self.ensure()

    def ensure(self) -> str:
        """``path``, made (and locked) if it is not yet."""
        with self._making:
            if self._lock < 0:
                # Lock before the dir gets its visible name: a reaper never sees it unlocked.
                init = os.path.join(self._base, ".init-" + self._name)
                os.mkdir(init, 0o700)
                lock = os.open(os.path.join(init, ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
                fcntl.flock(lock, fcntl.LOCK_EX)
                os.rename(init, self.path)
                self._lock = lock
        return self.path

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
        if self._lock >= 0:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._lock)
            self._lock = -1
        self._in_use.close()
