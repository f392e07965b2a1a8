"""The engines' default seccomp profile, as a runtime-spec object and as a BPF program.

The profile is Docker's default (moby's ``profiles/seccomp/default.json``), read from
the system, not shipped: ``$OCIBUILD_SECCOMP_PROFILE`` if set, else where Debian's
golang-github-docker-docker-dev installs it, else the copy `make setup` unpacks from that
same package into /usr/local/share/ocibuild/seccomp/. The containers tools' profile
(/usr/share/containers/seccomp.json) is not a fallback: it lets any step unshare a user
namespace, which Docker's refuses without CAP_SYS_ADMIN.
:func:`spec_seccomp` turns it into the runtime-spec
``linux.seccomp`` object the way moby's ``setupSeccomp`` does: the host architecture's
``archMap`` entry gives ``architectures``, and each syscall group is kept or dropped by
its ``includes``/``excludes`` (architectures, capabilities in the bounding set, minimum
kernel). runc compiles and installs that object itself; :func:`compile_bpf` compiles
the same object to a classic BPF program through libseccomp (ctypes), with runc's rule
semantics (see ``_add_rules``), once per build: for the native-chroot sandbox, and for
crun (``spec.with_seccomp_program``: byte for byte what crun would compile each step).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ocibuild.errors import OcibuildError

PROFILE_ENV = "OCIBUILD_SECCOMP_PROFILE"
PROFILE_PATHS = (
    "/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json",
    "/usr/local/share/ocibuild/seccomp/default.json",
)
PROFILE_PACKAGE = "golang-github-docker-docker-dev"

# uname's machine -> the Go/moby architecture names used in the profile's "arches".
_MACHINE_TO_NATIVE = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
    "mips64": "mips64",
}
# Sub-architectures of the profile's archMap left out of the filter. x32 (x86_64's ILP32
# ABI: syscall numbers with bit 30 set) is off in Debian's kernels (``syscall.x32=n``) and
# compiled out of most others; left out, an x32 syscall gets the filter's bad-architecture
# action (killed) instead of the profile's rules: stricter than Docker, and a third fewer
# rules for the runtime to compile on every RUN step (runc: ~5 ms of CPU per step).
DROPPED_SUBARCHES = frozenset({"SCMP_ARCH_X32"})

# moby's nativeToSeccomp: Go/moby architecture name -> SCMP_ARCH_*.
_NATIVE_TO_SCMP = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "loongarch64": "SCMP_ARCH_LOONGARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsle": "SCMP_ARCH_MIPSEL",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "riscv64": "SCMP_ARCH_RISCV64",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}


def host_arch() -> str:
    """The host's architecture in the profile's naming ("amd64", "arm64", ...)."""
    machine = os.uname().machine
    return _MACHINE_TO_NATIVE.get(machine, machine)


def host_kernel() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    return parse_kernel(os.uname().release)


def parse_kernel(release: str) -> tuple[int, int]:
    """``"6.1.0-13-amd64"`` -> (6, 1); what the profile's ``minKernel`` compares."""
    parts = release.split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise OcibuildError(f"cannot parse kernel version {release!r}") from None


def profile_path() -> str:
    """Where the default profile is read from (see the module docstring)."""
    chosen = os.environ.get(PROFILE_ENV)
    if chosen:
        return chosen
    for path in PROFILE_PATHS:
        if os.path.exists(path):
            return path
    raise OcibuildError(
        "no seccomp profile on this machine: RUN steps are never run without one",
        hint=f"run `make setup` (it unpacks Docker's profile from Debian's {PROFILE_PACKAGE}), "
        f"or set {PROFILE_ENV}=FILE to Docker's default profile (moby's "
        "profiles/seccomp/default.json)",
    )


@functools.cache
def default_profile() -> dict[str, Any]:
    """The default profile, parsed (see :func:`profile_path`)."""
    path = profile_path()
    try:
        with open(path, encoding="utf-8") as f:
            profile: dict[str, Any] = json.load(f)
    except (OSError, ValueError) as e:
        raise OcibuildError(
            f"cannot read the seccomp profile {path}: {e}",
            hint=f"reinstall {PROFILE_PACKAGE}, or set {PROFILE_ENV}=FILE",
        ) from None
    if not isinstance(profile.get("syscalls"), list) or "defaultAction" not in profile:
        raise OcibuildError(
            f"{path} is not a seccomp profile in Docker's format (no syscalls/defaultAction)",
            hint=f"set {PROFILE_ENV}=FILE to a profile in Docker's format",
        )
    return profile


def _kept(call: Mapping[str, Any], arch: str, caps: set[str], kernel: tuple[int, int]) -> bool:
    """moby's include/exclude filter for one syscall group."""
    exc = call.get("excludes") or {}
    if arch in (exc.get("arches") or ()):
        return False
    if any(c in caps for c in exc.get("caps") or ()):
        return False
    if exc.get("minKernel") and kernel >= parse_kernel(exc["minKernel"]):
        return False
    inc = call.get("includes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if any(c not in caps for c in inc.get("caps") or ()):
        return False
    return not (inc.get("minKernel") and kernel < parse_kernel(inc["minKernel"]))


def spec_seccomp(
    capabilities: Iterable[str],
    arch: str | None = None,
    *,
    kernel: tuple[int, int] | None = None,
    profile: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The runtime-spec ``linux.seccomp`` for a process whose bounding set is
    ``capabilities``, on ``arch`` (moby naming; default: the host's) and ``kernel``
    (default: the running one). Pure once the profile is loaded. The native architecture
    and its compat ABIs, without :data:`DROPPED_SUBARCHES`."""
    arch = arch or host_arch()
    kernel = kernel or host_kernel()
    profile = default_profile() if profile is None else profile
    caps = set(capabilities)
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or ())
    scmp = _NATIVE_TO_SCMP.get(arch)
    for entry in profile.get("archMap") or ():
        if scmp is not None and entry["architecture"] == scmp:
            subs = [a for a in entry.get("subArchitectures") or () if a not in DROPPED_SUBARCHES]
            arches += [entry["architecture"], *subs]
            break
    if arches:
        out["architectures"] = arches
    syscalls = []
    for call in profile.get("syscalls") or ():
        if not _kept(call, arch, caps, kernel):
            continue
        names = [call["name"]] if call.get("name") else list(call.get("names") or ())
        rule: dict[str, Any] = {"names": names, "action": call["action"]}
        if "errnoRet" in call:
            rule["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            rule["args"] = [dict(a) for a in call["args"]]
        syscalls.append(rule)
    out["syscalls"] = syscalls
    return out


# ---- libseccomp (through ctypes: no C declarations to parse at start-up) -------------

_NR_SCMP_ERROR = -1
_SCMP_FLTATR_CTL_NNP = 3  # enum scmp_filter_attr
_MAX_ARGS = 6
_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}


class _ArgCmp(ctypes.Structure):
    """libseccomp's ``struct scmp_arg_cmp``."""

    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),  # enum scmp_compare
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


@functools.cache
def _lib() -> Any:
    """libseccomp.so.2 with the prototypes of the calls used here.

    ctypes rather than cffi's ABI mode: cffi parses its C declarations with pycparser on
    every start (20-150 ms here, once per build), ctypes takes them as Python objects."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError as exc:
        raise OcibuildError(
            "libseccomp is not installed: cannot compile the seccomp filter",
            hint="apt-get install -y libseccomp2",
        ) from exc
    ctx, u32, cint = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
    for name, restype, argtypes in (
        ("seccomp_init", ctx, (u32,)),
        ("seccomp_release", None, (ctx,)),
        ("seccomp_arch_add", cint, (ctx, u32)),
        ("seccomp_arch_resolve_name", u32, (ctypes.c_char_p,)),
        ("seccomp_syscall_resolve_name", cint, (ctypes.c_char_p,)),
        ("seccomp_rule_add_array", cint, (ctx, u32, cint, ctypes.c_uint, ctypes.c_void_p)),
        ("seccomp_attr_set", cint, (ctx, cint, u32)),
        ("seccomp_export_bpf", cint, (ctx, cint)),
    ):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def _action(name: str, errno_ret: int | None, default_errno: int) -> int:
    """An SCMP_ACT_* name (+ errnoRet) -> libseccomp's action value, as runc maps it."""
    if name == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    if name in _ACTIONS:
        return _ACTIONS[name]
    raise OcibuildError(f"seccomp action {name!r} is not supported by ocibuild's compiler")


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise OcibuildError(f"libseccomp: {what}: {os.strerror(-rc)}")


def compile_bpf(linux_seccomp: Mapping[str, Any]) -> bytes:
    """Compile a runtime-spec ``linux.seccomp`` object to a classic BPF program.

    Returns the raw array of ``struct sock_filter`` (8 bytes each), ready for
    ``seccomp(SECCOMP_SET_MODE_FILTER)`` / ``prctl(PR_SET_SECCOMP)`` in a
    ``struct sock_fprog``. Installing it needs no_new_privs or CAP_SYS_ADMIN: that is the
    loader's business (libseccomp's own no_new_privs attribute is not part of the export).
    """
    lib = _lib()
    default_errno = int(linux_seccomp.get("defaultErrnoRet", errno.EPERM))
    default = _action(str(linux_seccomp["defaultAction"]), None, default_errno)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OcibuildError("libseccomp: seccomp_init failed (bad default action?)")
    try:
        _check(lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 0), "no_new_privs attribute")
        for arch in linux_seccomp.get("architectures") or ():
            _add_arch(lib, ctx, str(arch))
        for call in linux_seccomp.get("syscalls") or ():
            _add_rules(lib, ctx, call, default, default_errno)
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


@functools.lru_cache(maxsize=8)
def compile_bpf_cached(linux_seccomp_json: str) -> bytes:
    """:func:`compile_bpf` of a JSON-encoded ``linux.seccomp``, once per process: every RUN
    of a build carries the same profile (libseccomp takes tens of ms for Docker's)."""
    return compile_bpf(json.loads(linux_seccomp_json))


def _add_arch(lib: Any, ctx: Any, arch: str) -> None:
    name = arch.removeprefix("SCMP_ARCH_").lower()
    token = lib.seccomp_arch_resolve_name(name.encode())
    if token == 0:
        raise OcibuildError(f"libseccomp does not know the architecture {arch!r}")
    rc = lib.seccomp_arch_add(ctx, token)
    if rc != -errno.EEXIST:  # the native architecture is already there
        _check(rc, f"add architecture {arch}")


def _conditions(args: Sequence[Mapping[str, Any]]) -> list[dict[str, int]]:
    """Spec ``args`` -> ``struct scmp_arg_cmp`` initialisers (for MASKED_EQ, ``value``
    is the mask and ``valueTwo`` the value, as in runc)."""
    out = []
    for a in args:
        index = int(a["index"])
        if not 0 <= index < _MAX_ARGS:
            raise OcibuildError(f"seccomp argument index {index} out of range 0-5")
        op = _OPS.get(str(a["op"]))
        if op is None:
            raise OcibuildError(f"unknown seccomp comparison {a['op']!r}")
        out.append(
            {
                "arg": index,
                "op": op,
                "datum_a": int(a.get("value", 0)) & 0xFFFFFFFFFFFFFFFF,
                "datum_b": int(a.get("valueTwo", 0)) & 0xFFFFFFFFFFFFFFFF,
            }
        )
    return out


def _add_rules(
    lib: Any, ctx: Any, call: Mapping[str, Any], default: int, default_errno: int
) -> None:
    """One spec syscall entry, with runc's semantics: a rule whose action is the default
    one is skipped, a syscall libseccomp does not know is skipped, and conditions on the
    same argument index become separate rules (OR) instead of one rule (AND)."""
    errno_ret = call.get("errnoRet")
    action = _action(
        str(call["action"]), None if errno_ret is None else int(errno_ret), default_errno
    )
    if action == default:
        return
    conds = _conditions(call.get("args") or ())
    indexes = [c["arg"] for c in conds]
    groups = [[c] for c in conds] if len(set(indexes)) < len(indexes) else [conds]
    for name in call.get("names") or ():
        nr = lib.seccomp_syscall_resolve_name(str(name).encode())
        if nr == _NR_SCMP_ERROR:
            continue  # unknown to this libseccomp (and so to this kernel's era)
        for group in groups:
            array = (_ArgCmp * len(group))(*(_ArgCmp(**c) for c in group)) if group else None
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), array)
            _check(rc, f"rule for {name}")


def _export(lib: Any, ctx: Any) -> bytes:
    fd = os.memfd_create("ocibuild-seccomp", os.MFD_CLOEXEC)
    try:
        _check(lib.seccomp_export_bpf(ctx, fd), "export BPF")
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, 0, os.SEEK_SET)
        data = b""
        while len(data) < size:
            chunk = os.read(fd, size - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if not data or len(data) % 8:
        raise OcibuildError(f"libseccomp exported a malformed BPF program ({len(data)} bytes)")
    return data
