"""``ocibuild run -t`` under crun: ocibuild relays the container's terminal itself.

crun's own foreground relay (crun 1.8.1 here) drops the last output of a process that
exits right after writing it: ``sh -c 'test -t 1 && echo on-a-tty'`` printed nothing in
2 of 100 runs. With ``--console-socket`` crun hands over the master end of the pty it made
(SCM_RIGHTS) and still runs in the foreground, returning the process's status; ocibuild
copies the master to the output until the read fails with EIO (every slave end closed:
the process is gone and the kernel has handed over all it wrote), and its standard input
to the master. runc refuses a console socket in the foreground, and its own relay lost
nothing here (0 of 50), so runc keeps relaying itself.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import os
import select
import shutil
import socket
import tempfile
import termios
import threading
from collections.abc import Callable, Sequence

_CHUNK = 65536


class ConsoleSocket:
    """A listening unix socket in a private directory of its own (``/tmp``: the path of
    a socket has at most 107 bytes, a bundle's path may be longer)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="ocibuild-console-")  # mode 0700
        self.path = os.path.join(self.dir, "sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)

    def receive(self, runtime_out: int, on_output: Callable[[bytes], None]) -> int | None:
        """The pty master the runtime sends; None when the runtime ended first (EOF on
        ``runtime_out``, its own output, which is passed on meanwhile)."""
        listening = self.server.fileno()
        while True:
            ready, _, _ = select.select([listening, runtime_out], [], [])
            if listening in ready:
                conn, _ = self.server.accept()
                with conn:
                    fds = array.array("i")
                    _, ancillary, _, _ = conn.recvmsg(16, socket.CMSG_SPACE(4 * fds.itemsize))
                for level, kind, data in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
                if fds:
                    for extra in fds[1:]:
                        os.close(extra)
                    return fds[0]
                continue  # a connection that sent no descriptor
            data = os.read(runtime_out, _CHUNK)
            if not data:
                return None
            on_output(data)

    def close(self) -> None:
        self.server.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def relay(master: int, stdin: int | None, on_output: Callable[[bytes], None]) -> None:
    """Copy ``master`` to ``on_output`` until every slave end is closed, and ``stdin``
    (if any) to ``master`` meanwhile; the master is sized like the terminal ocibuild
    runs on, as runc sizes its own."""
    copy_size((stdin, 0, 1, 2), master)
    stop_r, stop_w = os.pipe()
    feeder = None
    if stdin is not None:
        feeder = threading.Thread(
            target=_feed, args=(stdin, master, stop_r), name="console-in", daemon=True
        )
        feeder.start()
    try:
        while True:
            try:
                data = os.read(master, _CHUNK)
            except OSError as e:
                if e.errno == errno.EIO:  # no slave end left: all was read
                    return
                raise
            if not data:
                return
            on_output(data)
    finally:
        os.close(stop_w)  # the feeder sees it and ends
        if feeder is not None:
            feeder.join()
        os.close(stop_r)


def _feed(stdin: int, master: int, stop: int) -> None:
    while True:
        ready, _, _ = select.select([stdin, stop], [], [])
        if stop in ready:
            return
        try:
            data = os.read(stdin, _CHUNK)
        except OSError:
            return
        if not data:
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(master, view) :]
            except OSError:  # the process is gone
                return


def copy_size(sources: Sequence[int | None], terminal: int) -> None:
    """Give ``terminal`` the size of the first of ``sources`` that is a terminal."""
    for fd in sources:
        if fd is None:
            continue
        with contextlib.suppress(OSError):
            size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(terminal, termios.TIOCSWINSZ, size)
            return
