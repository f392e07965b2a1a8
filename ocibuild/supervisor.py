"""Run a command as init of its own PID namespace, so nothing outlives it.

``ocibuild build`` and ``ocibuild run`` start runtimes, containers and (with
fuse-overlayfs) FUSE daemons. If ocibuild is killed with SIGKILL, those would go on
running. So the command runs in a child that is PID 1 of a new PID namespace, with a
parent-death signal of SIGKILL: when the child dies, the kernel kills every process in
its namespace; when the parent (the process the user sees) dies, the child gets SIGKILL
first. Together with the private mount namespace (mounts die with their namespace),
``kill -9`` leaves no process and no mount behind; ``ocibuild prune`` clears the
scratch dirs.

The parent ignores SIGINT (the child is in the same process group and gets the
terminal's Ctrl-C itself) and forwards SIGTERM, SIGHUP and SIGQUIT.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from collections.abc import Callable

from ocibuild import _native

CLONE_NEWPID = 0x20000000
FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


BINFMT_MISC = "/proc/sys/fs/binfmt_misc"
PROC_HINT = (
    "hint: inside a container, a user namespace mounts /proc only where nothing of /proc is "
    "masked: podman --security-opt unmask=/proc/*, docker --security-opt "
    "systempaths=unconfined (`ocibuild doctor` checks it)"
)


def _host_binfmt_misc() -> bool:
    """True when binfmt_misc is mounted and we are in the initial user namespace (there a
    new mount shows the same registry; in another one it would make an empty one)."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            initial = f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return False
    return initial and os.path.exists(os.path.join(BINFMT_MISC, "register"))


def _child(fn: Callable[[], int], parent_alive: int) -> None:
    code = 1
    try:
        _native.set_pdeathsig(signal.SIGKILL)
        if select.select([parent_alive], [], [], 0)[0]:  # EOF: the parent died already
            os._exit(128 + signal.SIGKILL)
        # Our own /proc: runtimes look themselves up there by their pid in this namespace.
        binfmt = _host_binfmt_misc()
        _native.enter_mount_namespace()
        try:
            _native.mount_fs(
                "proc", "/proc", "proc", _native.MS_NOSUID | _native.MS_NODEV | _native.MS_NOEXEC
            )
        except OSError as exc:  # a container that masks parts of /proc (ocibuild doctor)
            print(f"error: cannot mount /proc for the build: {exc.strerror}", file=sys.stderr)
            print(PROC_HINT, file=sys.stderr)
            raise SystemExit(1) from None
        if binfmt:  # the emulators' registry, seen again (ocibuild.platforms reads it)
            with contextlib.suppress(OSError):
                _native.mount_fs(
                    "binfmt_misc", BINFMT_MISC, "binfmt_misc", _native.MS_NOSUID | _native.MS_NODEV
                )
        code = fn()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        _flush()
        os._exit(code)


def supervised(fn: Callable[[], int], *, exit_now: bool = False) -> int:
    """``fn()``'s exit status, ``fn`` run as PID 1 of a new PID namespace.

    Where a PID namespace cannot be made (no privilege for it, or
    ``OCIBUILD_NO_PIDNS=1``), ``fn`` simply runs in this process.

    ``exit_now`` (the command line's own process): once the child is reaped, this
    process exits with its status at once, without its interpreter's finalization (5-8 ms
    with a build's modules loaded): it has nothing else to do. (It still reaps the child,
    although the kernel's teardown of the child's namespaces takes 1.5-6 ms of RCU grace
    periods here: so `time` and `wait4` see the build's own CPU time and peak RSS.)
    """
    if os.environ.get("OCIBUILD_NO_PIDNS") == "1":
        return fn()
    try:
        _native.unshare(CLONE_NEWPID)
    except OSError:
        return fn()
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(write_end)
        _child(fn, read_end)
    os.close(read_end)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, *FORWARDED)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in FORWARDED:
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(write_end)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
    if exit_now:
        _flush()
        os._exit(code)
    return code


def _flush() -> None:
    """What Python would write at exit; ``os._exit`` does not."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
