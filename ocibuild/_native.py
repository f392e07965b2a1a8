"""Typed wrappers over the cffi native helper (the only importer of ``_ocibuild_native``).

Each wrapper turns the helper's ``-errno`` into ``OSError(errno, "<op>: <strerror>", path)``
whose text carries a hint for the usual causes (EPERM, ENOSYS, EINVAL...). Callers wrap
these into ``OcibuildError`` subclasses with the Dockerfile position.

Mount-namespace state is per *thread* for ``unshare(CLONE_NEWNS)``: call
:func:`enter_mount_namespace` from the main thread before starting any thread that spawns
the runtime.
"""

from __future__ import annotations

import errno as errno_mod
import os
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ocibuild._record import dataclass
from ocibuild.errors import OcibuildError

_HINTS: dict[str, dict[int, str]] = {
    "enter mount namespace": {
        errno_mod.EPERM: "needs CAP_SYS_ADMIN: run as root or inside a user namespace",
    },
    "mount overlay": {
        errno_mod.EPERM: "needs CAP_SYS_ADMIN (root, or rootless with the 'userxattr' option)",
        errno_mod.ENOSYS: "the kernel lacks overlayfs support",
        errno_mod.ENODEV: "overlayfs is not available: try `modprobe overlay`",
        errno_mod.EINVAL: (
            "overlayfs refused the options: an upper/work dir on an unsupported filesystem "
            "(overlay, some FUSE), upper and work on different filesystems, or a bad option"
        ),
        errno_mod.E2BIG: "too many lower layers for the classic mount(2) API (one page)",
        errno_mod.ENOENT: "a lower, upper, work or target directory does not exist",
    },
    "bind mount": {
        errno_mod.EPERM: "needs CAP_SYS_ADMIN in the current mount namespace",
        errno_mod.ENOENT: "source or target does not exist",
    },
    "umount": {
        errno_mod.EBUSY: "still in use: a process has its cwd or a file open there",
        errno_mod.EINVAL: "not a mount point",
    },
    "unshare": {
        errno_mod.EPERM: "unprivileged user namespaces may be disabled: run `ocibuild doctor`",
        errno_mod.EINVAL: "unshare(CLONE_NEWUSER) needs a single-threaded process",
        errno_mod.ENOSPC: "user.max_user_namespaces is exhausted: run `ocibuild doctor`",
        errno_mod.EUSERS: "user.max_user_namespaces is exhausted: run `ocibuild doctor`",
    },
    "spawn sandbox": {
        errno_mod.EPERM: "needs CAP_SYS_ADMIN: run as root or inside a user namespace",
        errno_mod.ENOENT: "the network namespace path does not exist",
        errno_mod.ENOSPC: "too many namespaces: raise user.max_*_namespaces",
    },
    "open in root": {
        errno_mod.ENOSYS: "the kernel lacks openat2(2) (Linux < 5.6)",
        errno_mod.EXDEV: "the path tried to escape the root",
        errno_mod.ELOOP: "too many symlinks (or a magic link) on the path",
    },
}

_GENERIC_HINTS = {
    errno_mod.EPERM: "operation not permitted: run as root or in a user namespace",
    errno_mod.ENOSYS: "the running kernel does not implement this system call",
}

_lock = threading.Lock()
_entered_mount_ns = False


def _load() -> tuple[Any, Any]:
    try:
        from ocibuild import _ocibuild_native as mod
    except ImportError as exc:
        raise OcibuildError(
            f"native helper not built ({exc})",
            hint="run `make setup` or `pip install -e .`",
        ) from exc
    module: ModuleType = mod
    return module.ffi, module.lib


def _check(rc: int, op: str, path: str | None = None) -> int:
    if rc >= 0:
        return rc
    err = -rc
    text = f"{op}: {os.strerror(err)}"
    hint = _HINTS.get(op, {}).get(err) or _GENERIC_HINTS.get(err)
    if hint:
        text += f" (hint: {hint})"
    raise OSError(err, text, path)


def enter_mount_namespace() -> None:
    """Move this process into a private mount namespace (idempotent per process).

    Mounts made afterwards are invisible to the host and vanish with the process, even on
    SIGKILL; child processes (the runtime) inherit them.
    """
    global _entered_mount_ns
    with _lock:
        if _entered_mount_ns:
            return
        _ffi, lib = _load()
        _check(lib.ocb_enter_mount_ns(), "enter mount namespace")
        _entered_mount_ns = True


def in_private_mount_namespace() -> bool:
    """Whether :func:`enter_mount_namespace` already ran in this process."""
    return _entered_mount_ns


def mount_overlay(
    lowers: Sequence[str],
    upper: str,
    work: str,
    target: str,
    extra_opts: str = "",
    *,
    classic_api: bool = False,
) -> None:
    """Mount overlayfs on ``target``; ``lowers`` top-most first (at least one).

    Uses fsopen/fsconfig (``lowerdir+`` per layer on Linux >= 6.8) and falls back to
    mount(2) with an escaped option string; ``classic_api`` forces the fallback.
    """
    if not lowers:
        raise OSError(errno_mod.EINVAL, "mount overlay: no lower directory given", target)
    ffi, lib = _load()
    keep = [ffi.new("char[]", os.fsencode(p)) for p in lowers]
    arr = ffi.new("const char *[]", keep)
    rc = lib.ocb_mount_overlay_api(
        arr,
        len(keep),
        os.fsencode(upper),
        os.fsencode(work),
        os.fsencode(target),
        os.fsencode(extra_opts),
        int(classic_api),
    )
    _check(rc, "mount overlay", target)


def bind_mount(src: str, target: str, *, recursive: bool = True, readonly: bool = False) -> None:
    """Bind-mount ``src`` on ``target`` (recursive by default), optionally read-only."""
    _ffi, lib = _load()
    rc = lib.ocb_bind_mount(os.fsencode(src), os.fsencode(target), int(recursive), int(readonly))
    _check(rc, "bind mount", target)


def umount(target: str, detach: bool = False) -> None:
    """Unmount ``target`` (never following a final symlink); ``detach`` = MNT_DETACH."""
    _ffi, lib = _load()
    _check(lib.ocb_umount(os.fsencode(target), int(detach)), "umount", target)


MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8


def mount_fs(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    """mount(2) a filesystem (``proc``, ``tmpfs``...) on ``target``."""
    ffi, lib = _load()
    rc = lib.ocb_mount_fs(
        os.fsencode(source),
        os.fsencode(target),
        os.fsencode(fstype),
        flags,
        os.fsencode(data) if data else ffi.NULL,
    )
    _check(rc, f"mount {fstype}", target)


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0o644) -> int:
    """openat2(root_fd, path) with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS; returns an fd.

    ``..`` and absolute symlinks are clamped to ``root_fd``: the lookup cannot leave it.
    Raises ``OSError(ENOSYS)`` when the kernel lacks openat2.
    """
    _ffi, lib = _load()
    rc = lib.ocb_open_in_root(root_fd, os.fsencode(path), flags, mode)
    return _check(rc, "open in root", path)


# Namespaces for :func:`unshare` (sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000


def unshare(flags: int) -> None:
    """unshare(2); CLONE_NEWUSER needs a single-threaded process."""
    _ffi, lib = _load()
    _check(lib.ocb_unshare(flags), "unshare")


def set_pdeathsig(sig: int) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies."""
    _ffi, lib = _load()
    _check(lib.ocb_set_pdeathsig(sig), "set parent-death signal")


def isolate_cgroup2(unified: str = "/sys/fs/cgroup/unified") -> None:
    """In a new private mount namespace, bind ``unified`` (cgroup2) over /sys/fs/cgroup.

    For crun on hybrid cgroup hosts; meant for a child right before it execs crun.
    """
    _ffi, lib = _load()
    _check(lib.ocb_isolate_cgroup2(os.fsencode(unified)), "bind cgroup2", "/sys/fs/cgroup")


# ocb_mount kinds.
M_MKDIR = 1
M_MKFILE = 2
M_IF_EXISTS = 4
M_BIND = 8
M_RECURSIVE = 16
M_MASK = 32
M_DEVICE = 64
M_REAL_DIR = 128
M_RO_PATH = 256


@dataclass(frozen=True)
class SandboxMount:
    """One mount the sandbox makes before pivot_root.

    ``target`` is an absolute path *inside the container* (no ``..``): the helper resolves
    it in the root at mount time. ``source`` is a host path for binds.
    """

    target: str
    source: str = ""
    fstype: str = ""
    data: str = ""
    flags: int = 0  # MS_*
    kind: int = 0  # M_*


@dataclass(frozen=True)
class SandboxConfig:
    rootfs: str
    argv: Sequence[str]
    env: Sequence[str]
    cwd: str
    hostname: str
    mounts: Sequence[SandboxMount]
    symlinks: Sequence[tuple[str, str]]  # (link target, path of the link in the container)
    uid: int
    gid: int
    groups: Sequence[int]
    set_groups: bool
    caps: Sequence[int]
    stdout_fd: int
    new_net: bool
    netns_path: str = ""  # join this network namespace (wins over new_net)
    readonly_root: bool = False
    no_new_privs: bool = False
    seccomp_bpf: bytes = b""  # struct sock_filter[], installed right before exec


SANDBOX_STAGES = {
    1: "set up stdio",
    2: "make / private",
    3: "bind the rootfs",
    4: "create /dev symlinks",
    5: "set the hostname",
    6: "pivot_root into the rootfs",
    7: "chdir to the working directory",
    8: "drop capabilities",
    9: "setgroups",
    10: "setgid",
    11: "setuid",
    12: "exec",
    13: "join the network namespace",
    14: "join a new session keyring",
    15: "install the seccomp filter",
}
STAGE_MOUNT_BASE = 100
STAGE_CWD = 7
STAGE_EXEC = 12

# Why a sandbox stage failed, beyond errno (OCB_WHY_*).
WHY_NOT_REAL_DIR = 1
WHY_CHANGED = 2
WHY_IN_PROCFS = 3
WHY_NOT_APPLIED = 4
WHY_SOURCE = 5

_SOCK_FILTER_SIZE = 8


def sandbox_spawn(cfg: SandboxConfig) -> tuple[int, int]:
    """Clone a sandbox child (see native/ocibuild_native.h); returns (pid, error-pipe fd).

    The error pipe carries three native ints (stage, errno, why) when the child failed
    before exec, nothing (EOF) when exec succeeded.
    """
    ffi, lib = _load()
    keep: list[Any] = []

    def cstr(text: str) -> Any:
        buf = ffi.new("char[]", os.fsencode(text))
        keep.append(buf)
        return buf

    def carray(items: Sequence[str]) -> Any:
        arr = ffi.new("const char *[]", [cstr(x) for x in items] + [ffi.NULL])
        keep.append(arr)
        return arr

    if len(cfg.seccomp_bpf) % _SOCK_FILTER_SIZE or len(cfg.seccomp_bpf) > 65535 * 8:
        raise OSError(errno_mod.EINVAL, "spawn sandbox: malformed seccomp program", cfg.rootfs)
    mounts = ffi.new("struct ocb_mount[]", max(1, len(cfg.mounts)))
    for i, m in enumerate(cfg.mounts):
        mounts[i].source = cstr(m.source) if m.source else ffi.NULL
        mounts[i].target = cstr(m.target)
        mounts[i].fstype = cstr(m.fstype) if m.fstype else ffi.NULL
        mounts[i].data = cstr(m.data) if m.data else ffi.NULL
        mounts[i].flags = m.flags
        mounts[i].kind = m.kind
    links = carray([p for pair in cfg.symlinks for p in pair])
    groups = ffi.new("unsigned int[]", list(cfg.groups) or [0])
    caps = ffi.new("int[]", list(cfg.caps) or [-1])
    bpf = ffi.new("unsigned char[]", cfg.seccomp_bpf or b"\0")
    sb = ffi.new("struct ocb_sandbox *")
    sb.rootfs = cstr(cfg.rootfs)
    sb.argv = carray(cfg.argv)
    sb.envp = carray(cfg.env)
    sb.cwd = cstr(cfg.cwd)
    sb.hostname = cstr(cfg.hostname) if cfg.hostname else ffi.NULL
    sb.mounts = mounts
    sb.nmounts = len(cfg.mounts)
    sb.symlinks = links
    sb.nsymlinks = len(cfg.symlinks)
    sb.uid = cfg.uid
    sb.gid = cfg.gid
    sb.groups = groups
    sb.ngroups = len(cfg.groups)
    sb.set_groups = int(cfg.set_groups)
    sb.caps = caps
    sb.ncaps = len(cfg.caps)
    sb.stdout_fd = cfg.stdout_fd
    sb.new_net = int(cfg.new_net)
    sb.netns_path = cstr(cfg.netns_path) if cfg.netns_path else ffi.NULL
    sb.readonly_root = int(cfg.readonly_root)
    sb.no_new_privs = int(cfg.no_new_privs)
    sb.seccomp_filter = bpf if cfg.seccomp_bpf else ffi.NULL
    sb.seccomp_len = len(cfg.seccomp_bpf) // _SOCK_FILTER_SIZE
    err_fd = ffi.new("int *")
    pid = _check(lib.ocb_sandbox_spawn(sb, err_fd), "spawn sandbox", cfg.rootfs)
    return pid, int(err_fd[0])


def btime_ns(path: str | bytes) -> int:
    """Birth time of ``path`` (not following a final symlink) in ns; -1 if not recorded."""
    ffi, lib = _load()
    out = ffi.new("long long *")
    _check(lib.ocb_btime(os.fsencode(path), out), "statx", os.fsdecode(path))
    return int(out[0])
