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


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0o644) -> int:
    """openat2(root_fd, path) with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS; returns an fd.

    ``..`` and absolute symlinks are clamped to ``root_fd``: the lookup cannot leave it.
    Raises ``OSError(ENOSYS)`` when the kernel lacks openat2.
    """
    _ffi, lib = _load()
    rc = lib.ocb_open_in_root(root_fd, os.fsencode(path), flags, mode)
    return _check(rc, "open in root", path)
