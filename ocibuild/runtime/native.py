"""native-chroot: run a bundle's process without an OCI runtime, through the C helper.

The bundle's ``config.json`` (the same spec runc and crun get) is translated into the
helper's mount list: the spec's mounts in order, the default devices bound from the host,
the /dev symlinks, masked and read-only paths, all as paths *in the container*. The helper
clones into new mount, pid, ipc and uts namespaces (a new or given network namespace as
the spec says), joins a fresh session keyring, resolves every target inside the rootfs
through a directory fd (openat2 RESOLVE_IN_ROOT) and mounts onto the resolved fd, checks
each mount and protection took (a protection that cannot be applied is an error), makes
the rootfs and every writable mount ``nodev``, pivot_roots (chroot where pivot_root is
refused), clears inheritable and ambient capabilities and keeps only the spec's bounding
set, installs the spec's seccomp filter, sets groups/gid/uid and execs with no fd but
stdio open. Reproduce a RUN by hand with
``python -m ocibuild.runtime.native BUNDLE``.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import json
import os
import posixpath
import signal
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ocibuild import _native
from ocibuild.errors import OcibuildError, RuntimeFailure
from ocibuild.runtime.bundle import CONFIG_NAME

NAME = "native-chroot"

# linux/capability.h, in number order.
CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)  # fmt: skip
CAP_NUMBERS = {"CAP_" + name: i for i, name in enumerate(CAPABILITIES)}

# MS_* flags (sys/mount.h) for mount options; (set, clear).
_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (1, 0), "rw": (0, 1), "nosuid": (2, 0), "suid": (0, 2), "nodev": (4, 0),
    "dev": (0, 4), "noexec": (8, 0), "exec": (0, 8), "sync": (16, 0), "async": (0, 16),
    "noatime": (1024, 0), "atime": (0, 1024), "nodiratime": (2048, 0),
    "diratime": (0, 2048), "relatime": (1 << 21, 0), "norelatime": (0, 1 << 21),
    "strictatime": (1 << 24, 0),
}  # fmt: skip
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_LINKS = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
)


def mount_flags(options: Sequence[str]) -> tuple[int, str, bool, bool]:
    """(MS_* flags, data string, bind?, recursive?) from OCI mount options (pure)."""
    flags = 0
    data: list[str] = []
    bind = recursive = False
    for opt in options:
        if opt in ("bind", "rbind"):
            bind = True
            recursive = recursive or opt == "rbind"
        elif opt in _FLAGS:
            on, off = _FLAGS[opt]
            flags = (flags | on) & ~off
        elif opt in ("private", "rprivate", "slave", "rslave", "shared", "rshared"):
            continue
        else:
            data.append(opt)
    return flags, ",".join(data), bind, recursive


def container_path(dest: str) -> str:
    """``dest`` as an absolute, normalized path in the container (no ``..`` left)."""
    return "/" + posixpath.normpath("/" + dest).lstrip("/")


# Destinations that must be real directories of the image (runc refuses a symlinked
# /proc: procfs would be mounted where the protections do not look).
_REAL_DIRS = ("/proc", "/sys", "/dev")


def _mount_kind(m: Mapping[str, Any], dest: str, bind: bool, recursive: bool) -> int:
    if bind or m["type"] == "bind":
        kind = _native.M_BIND | (_native.M_RECURSIVE if recursive else 0)
    else:
        kind = _native.M_MKDIR
    if dest in _REAL_DIRS or m["type"] in ("proc", "sysfs"):
        kind |= _native.M_REAL_DIR
    return kind


def _network(linux: Mapping[str, Any]) -> tuple[bool, str]:
    """(new empty netns?, netns path to join) from the spec's namespaces.

    No ``network`` entry: the host's network; one with a ``path``: join it; one without:
    a new, empty network namespace.
    """
    for ns in linux.get("namespaces", []):
        if ns.get("type") == "network":
            path = str(ns.get("path") or "")
            return not path, path
    return False, ""


def _seccomp_program(linux: Mapping[str, Any]) -> bytes:
    """The spec's ``linux.seccomp`` as a BPF program (b"" without one)."""
    profile = linux.get("seccomp")
    if not profile:
        return b""
    from ocibuild.runtime.seccomp import compile_bpf_cached

    return compile_bpf_cached(json.dumps(profile, sort_keys=True))


def sandbox_config(spec: Mapping[str, Any], stdout_fd: int) -> _native.SandboxConfig:
    """The helper's configuration for a runtime spec (pure: the helper resolves every path
    inside the root itself, at mount time)."""
    rootfs = str(spec["root"]["path"])
    process = spec["process"]
    linux = spec.get("linux", {})
    mounts: list[_native.SandboxMount] = []
    for m in spec.get("mounts", []):
        if m["type"] == "cgroup":
            continue  # no cgroup handling without a runtime
        flags, data, bind, recursive = mount_flags(m.get("options", []))
        dest = container_path(m["destination"])
        kind = _mount_kind(m, dest, bind, recursive)
        mounts.append(_native.SandboxMount(dest, m["source"], m["type"], data, flags, kind))
    for name in _DEVICES:
        if os.path.exists("/dev/" + name):
            kind = _native.M_BIND | _native.M_MKFILE | _native.M_DEVICE
            mounts.append(_native.SandboxMount(f"/dev/{name}", "/dev/" + name, kind=kind))
    for path in linux.get("maskedPaths", []):
        mounts.append(_native.SandboxMount(container_path(path), kind=_native.M_MASK))
    for path in linux.get("readonlyPaths", []):
        mounts.append(_native.SandboxMount(container_path(path), kind=_native.M_RO_PATH))
    user = process.get("user", {})
    groups = [int(g) for g in user.get("additionalGids", [])]
    caps = process.get("capabilities", {}).get("bounding", [])
    new_net, netns_path = _network(linux)
    return _native.SandboxConfig(
        rootfs=rootfs,
        argv=list(process["args"]),
        env=list(process.get("env", [])),
        cwd=container_path(str(process.get("cwd", "/"))),
        hostname=str(spec.get("hostname", "")),
        mounts=mounts,
        symlinks=[(target, f"/dev/{name}") for target, name in _DEV_LINKS],
        uid=int(user.get("uid", 0)),
        gid=int(user.get("gid", 0)),
        groups=groups,
        set_groups=_setgroups_allowed(),
        caps=[CAP_NUMBERS[c] for c in caps if c in CAP_NUMBERS],
        stdout_fd=stdout_fd,
        new_net=new_net,
        netns_path=netns_path,
        readonly_root=bool(spec["root"].get("readonly", False)),
        no_new_privs=bool(process.get("noNewPrivileges", False)),
        seccomp_bpf=_seccomp_program(linux),
    )


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups", encoding="ascii") as f:
            return f.read().strip() != "deny"
    except OSError:
        return True


class NativeRunner:
    """Runs a bundle in the native-chroot sandbox; the Runner interface of runner.py."""

    runtime = NAME

    def describe(self) -> str:
        return "native-chroot (ocibuild's own sandbox, no OCI runtime)"

    def command(self, bundle: str, container_id: str) -> list[str]:
        return [sys.executable, "-m", "ocibuild.runtime.native", bundle]

    def run(self, bundle: str, container_id: str, *, on_output: Callable[[bytes], None]) -> int:
        with open(os.path.join(bundle, CONFIG_NAME), "rb") as f:
            spec = json.load(f)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            cfg = sandbox_config(spec, write_fd)
            try:
                pid, err_fd = _native.sandbox_spawn(cfg)
            except OSError as exc:
                raise RuntimeFailure(f"native-chroot: {exc.strerror}") from None
        finally:
            os.close(write_fd)
        try:
            failure = _read_failure(err_fd, cfg)
            while chunk := os.read(read_fd, 65536):
                on_output(chunk)
            _, status = os.waitpid(pid, 0)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            raise
        finally:
            os.close(read_fd)
            os.close(err_fd)
        if failure:
            raise RuntimeFailure(f"native-chroot failed to start the process: {failure}")
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)


_MSG = struct.Struct("iii")


def _read_failure(err_fd: int, cfg: _native.SandboxConfig) -> str:
    data = b""
    while len(data) < _MSG.size:
        chunk = os.read(err_fd, _MSG.size - len(data))
        if not chunk:
            break
        data += chunk
    if len(data) < _MSG.size:
        return ""
    stage, err, why = _MSG.unpack(data)
    if stage >= _native.STAGE_MOUNT_BASE:
        index = stage - _native.STAGE_MOUNT_BASE
        if index < len(cfg.mounts):
            return _mount_failure(cfg.mounts[index], err, why)
        return f"mount #{index + 1}: {os.strerror(err)}"
    what = _native.SANDBOX_STAGES.get(stage, f"step {stage}")
    if stage == _native.STAGE_EXEC:
        what = f"exec {cfg.argv[0]!r}"
    if stage == _native.STAGE_CWD:
        what = f"working directory {cfg.cwd}"
    text = f"{what}: {os.strerror(err)}"
    if err == errno_mod.ENOENT and stage == _native.STAGE_EXEC:
        text += " (not found in the image's PATH)"
    if err == errno_mod.ELOOP and stage == _native.STAGE_CWD:
        text += " (it must lie inside the container; magic links like /proc/self/fd/N are refused)"
    return text


def _mount_failure(m: _native.SandboxMount, err: int, why: int) -> str:
    """What went wrong with one mount, masked or read-only path, for a user."""
    if m.kind & _native.M_MASK:
        what = f"masking {m.target}"
    elif m.kind & _native.M_RO_PATH:
        what = f"making {m.target} read-only"
    else:
        what = f"mount {m.fstype or 'bind'} on {m.target}"
    if why == _native.WHY_NOT_REAL_DIR:
        return (
            f"{what}: {m.target} in the image is a symlink or not a directory; "
            f"{m.fstype or 'it'} may only be mounted on a real directory of the image"
        )
    if why == _native.WHY_IN_PROCFS:
        return f"{what}: the target lies inside /proc or /sys, where nothing may be mounted"
    if why == _native.WHY_CHANGED:
        return f"{what}: the path changed while mounting (a symlink swapped in?); refused"
    if why == _native.WHY_NOT_APPLIED:
        return f"{what}: the protection did not take effect; refusing to run unprotected"
    if why == _native.WHY_SOURCE:
        return f"{what}: cannot open the source {m.source}: {os.strerror(err)}"
    if err == errno_mod.ENOSYS:
        return f"{what}: {os.strerror(err)} (native-chroot needs openat2: Linux 5.6 or later)"
    return f"{what}: {os.strerror(err)}"


def main(argv: Sequence[str]) -> int:
    """``python -m ocibuild.runtime.native BUNDLE``: run a kept bundle by hand."""
    if len(argv) != 1:
        print("usage: python -m ocibuild.runtime.native BUNDLE", file=sys.stderr)
        return 2

    def out(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    try:
        return NativeRunner().run(argv[0], "manual", on_output=out)
    except OcibuildError as exc:  # RuntimeFailure, or a seccomp profile libseccomp refused
        print(f"error: {exc.format()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
