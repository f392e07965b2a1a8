"""The build's private network: one network namespace per build, user-mode networking.

RUN steps do not share the host's network by default (``--network=default``): they join
one network namespace made for the build, whose only way out is slirp4netns, a user-mode
TCP/IP stack that turns the step's connections into ordinary sockets of the build
process. Outbound downloads work; the host's loopback services do not
(``--disable-host-loopback``), nor link-local 169.254.0.0/16 (cloud metadata services: a
``prohibit`` route in the namespace, which a step without CAP_NET_ADMIN cannot remove).
DNS: the host's nameservers unless they are on loopback, else slirp4netns' forwarder at
10.0.2.3 (see :mod:`etcfiles`).

Life cycle: the namespace is made on the first RUN step that needs it, in the build's
mount (and, rootless, user) namespace: a short-lived thread unshares CLONE_NEWNET (for
itself only), its ``/proc/thread-self/ns/net`` is bind-mounted on ``SCRATCH/netns`` (the
file keeps the namespace alive, the thread ends), and slirp4netns attaches to that path.
Every step's spec names the path in ``linux.namespaces``. :meth:`BuildNetwork.close`
(end of build) stops slirp4netns and unmounts the file; on SIGKILL, the build's PID
namespace takes slirp4netns down (and its ``--exit-fd`` pipe closes) and the mount dies
with the mount namespace.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from ocibuild import interrupts
from ocibuild.errors import OcibuildError

if TYPE_CHECKING:
    import subprocess

SLIRP4NETNS = "slirp4netns"
SLIRP_DNS = "10.0.2.3"
SLIRP_GATEWAY = "10.0.2.2"
TAP = "tap0"
MTU = 65520
BLOCKED = ("169.254.0.0/16",)  # link-local: cloud metadata services
_READY_TIMEOUT = 15.0
CLONE_NEWNET = 0x40000000

HOST_WARNING = (
    "warning: RUN with --network=host shares the host's network: the step can reach every "
    "service listening on the host's loopback (127.0.0.1, ::1) and link-local addresses"
)


def slirp_command(netns: str, ready_fd: int, exit_fd: int, *, sandbox: bool = True) -> list[str]:
    """The slirp4netns command line that serves the namespace at ``netns``."""
    argv = [
        SLIRP4NETNS,
        "--configure",
        f"--mtu={MTU}",
        "--disable-host-loopback",
        f"--ready-fd={ready_fd}",
        f"--exit-fd={exit_fd}",
        "--netns-type=path",
    ]
    if sandbox:
        argv += ["--enable-sandbox", "--enable-seccomp"]
    return [*argv, netns, TAP]


class BuildNetwork:
    """The build's network namespace, made on first use; a context manager."""

    def __init__(self, scratch: str, *, debug: Callable[[str], None] | None = None) -> None:
        self.path = os.path.join(scratch, "netns")
        self._debug = debug or (lambda _m: None)
        self._lock = threading.Lock()
        self._mounted = False
        self._slirp: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._exit_w = -1
        self._warned = False

    def warn_host(self) -> bool:
        """True the first time a step asks for the host's network (warn once a build)."""
        with self._lock:
            first, self._warned = not self._warned, True
            return first

    def describe(self) -> str:
        return (
            f"network namespace {self.path} with "
            + " ".join(slirp_command(self.path, 3, 4))
            + f"; blocked: {', '.join(BLOCKED)}"
        )

    def netns(self) -> str:
        """The namespace's path, making it (and starting slirp4netns) on the first call."""
        with self._lock:
            if self._slirp is None:
                try:
                    self._start()
                except BaseException:
                    self._teardown()  # the next step tries again (and says why it fails)
                    raise
            return self.path

    def _start(self) -> None:
        import shutil  # (imported here, and below: a build that runs nothing needs none)

        if shutil.which(SLIRP4NETNS) is None:
            raise OcibuildError(
                "slirp4netns is not installed: RUN steps get their own network through it",
                hint="apt-get install -y slirp4netns, or build with --network=host "
                "(the steps then share the host's network)",
            )
        from ocibuild import _native

        _native.enter_mount_namespace()
        self._debug("network: " + self.describe())
        with open(self.path, "x"):
            pass
        failed: list[BaseException] = []

        def make() -> None:
            try:
                make_namespace(self.path, BLOCKED)
            except BaseException as exc:  # re-raised below, in the caller's thread
                failed.append(exc)

        # A thread of our own that dies right away: unshare(CLONE_NEWNET) moves only the
        # calling thread, and the bind mount keeps the namespace (a helper process cost a
        # Python start, ~40 ms of CPU per build).
        maker = threading.Thread(target=make, name="ocibuild-netns", daemon=True)
        # A Ctrl-C/SIGTERM waits for the thread's end (a few ms): the teardown then knows
        # whether its bind mount is there. Raised when the block ends.
        with interrupts.deferred():
            maker.start()
            maker.join(_READY_TIMEOUT)
            self._mounted = not failed and not maker.is_alive()
        if maker.is_alive():
            raise OcibuildError(
                "timed out making the build's network namespace",
                hint="or build with --network=host",
            )
        if failed:
            exc = failed[0]
            if not isinstance(exc, OSError):
                raise exc
            raise OcibuildError(
                f"cannot make the build's network namespace: {exc.strerror or exc}",
                hint="or build with --network=host",
            )
        self._start_slirp()

    def _start_slirp(self) -> None:
        import select
        import subprocess
        import tempfile

        ready_r, ready_w = os.pipe()
        exit_r, self._exit_w = os.pipe()
        try:
            argv = slirp_command(self.path, ready_w, exit_r)
            # Its messages go to a file: a pipe nobody reads could fill up and block it.
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as it)
            self._slirp = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                pass_fds=(ready_w, exit_r),
                close_fds=True,
                start_new_session=True,
            )
        finally:
            os.close(ready_w)
            os.close(exit_r)
        try:
            ready = select.select([ready_r], [], [], _READY_TIMEOUT)[0]
            data = os.read(ready_r, 1) if ready else b""
        finally:
            os.close(ready_r)
        if data != b"1":
            err = self._stop_slirp()
            hint = "command: " + " ".join(argv) + "; or build with --network=host"
            if "/dev/net/tun" in err:
                hint = (
                    "slirp4netns needs /dev/net/tun: as root, `chmod 666 /dev/net/tun` (most "
                    "distributions ship it so), or build with --network=host"
                )
            raise OcibuildError(
                "slirp4netns did not bring up the build's network: " + (err or "timed out"),
                hint=hint,
            )

    def _stop_slirp(self, *, wait: bool = True) -> str:
        """Stop slirp4netns (closing its exit fd); returns what it said on stderr.

        ``wait=False`` (the end of a build): it is reaped by a daemon thread. Its exit
        deletes the tap device, which waits for an RCU grace period (15-30 ms here), and
        nothing of the build waits for that."""
        proc, self._slirp = self._slirp, None
        if self._exit_w >= 0:
            os.close(self._exit_w)
            self._exit_w = -1
        if proc is not None:
            if wait:
                _reap(proc)
            else:
                threading.Thread(target=_reap, args=(proc,), daemon=True).start()
        log, self._log = self._log, None
        if log is None:
            return ""
        with log:
            log.seek(0)
            err = log.read()[-4096:]
        return err.decode(errors="replace").strip().replace("\n", "; ")

    def close(self) -> None:
        with self._lock:
            self._teardown()

    def _teardown(self) -> None:
        if self._exit_w >= 0:  # tell slirp4netns to exit; it does while we unmount
            os.close(self._exit_w)
            self._exit_w = -1
        if self._mounted:
            from ocibuild import _native

            try:
                _native.umount(self.path)
            except OSError:
                with contextlib.suppress(OSError):
                    _native.umount(self.path, detach=True)
            self._mounted = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._stop_slirp(wait=False)

    def __enter__(self) -> BuildNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    import subprocess

    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---- making the namespace: in a thread of its own (see BuildNetwork._start) ----------

_RTM_NEWROUTE = 24
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_EXCL, _NLM_F_CREATE = 1, 4, 0x200, 0x400
_NLMSG_ERROR = 2
_RT_TABLE_MAIN, _RTPROT_STATIC, _RT_SCOPE_UNIVERSE, _RTN_PROHIBIT = 254, 4, 0, 8
_RTA_DST = 1


def route_message(cidr: str, seq: int = 1) -> bytes:
    """An RTM_NEWROUTE netlink request for a ``prohibit`` route to ``cidr`` (IPv4)."""
    import socket
    import struct

    address, _, length = cidr.partition("/")
    dst = socket.inet_aton(address)
    rtmsg = struct.pack(
        "BBBBBBBBI",
        socket.AF_INET,
        int(length or 32),
        0,
        0,
        _RT_TABLE_MAIN,
        _RTPROT_STATIC,
        _RT_SCOPE_UNIVERSE,
        _RTN_PROHIBIT,
        0,
    )
    attr = struct.pack("HH", 4 + len(dst), _RTA_DST) + dst
    body = rtmsg + attr
    flags = _NLM_F_REQUEST | _NLM_F_ACK | _NLM_F_CREATE | _NLM_F_EXCL
    return struct.pack("IHHII", 16 + len(body), _RTM_NEWROUTE, flags, seq, 0) + body


def add_prohibit_route(cidr: str) -> None:
    """Add a ``prohibit`` route to ``cidr`` in this process's network namespace."""
    import socket
    import struct

    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
        s.bind((0, 0))
        s.send(route_message(cidr))
        reply = s.recv(65536)
    if len(reply) >= 20:
        _, kind, _, _, _ = struct.unpack("IHHII", reply[:16])
        (code,) = struct.unpack("i", reply[16:20])
        if kind == _NLMSG_ERROR and code < 0:
            raise OSError(-code, f"add route prohibit {cidr}: {os.strerror(-code)}")


_libc: Any = None


def _unshare_net() -> None:
    """unshare(CLONE_NEWNET) for the calling thread only."""
    import ctypes

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.unshare(CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unshare(CLONE_NEWNET): {os.strerror(code)}")


def make_namespace(path: str, blocked: Sequence[str]) -> None:
    """Called in a thread that ends afterwards: move it to a new network namespace, add
    the ``prohibit`` routes to ``blocked``, and bind the namespace on ``path`` (an existing
    file), which keeps it alive once the thread is gone."""
    from ocibuild import _native

    _unshare_net()
    for cidr in blocked:
        add_prohibit_route(cidr)
    _native.bind_mount("/proc/thread-self/ns/net", path, recursive=False)
