"""runtime/seccomp.py: Docker's default profile as a spec object and as a BPF program.

The BPF program is loaded for real in a forked child (no_new_privs + PR_SET_SECCOMP, no
privileges needed) and the child reports what its syscalls returned.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
from typing import Any

import pytest

from ocibuild.errors import OcibuildError
from ocibuild.runtime import seccomp
from ocibuild.runtime.spec import DEFAULT_CAPABILITIES

X86_64 = platform.machine() == "x86_64"


def names(linux_seccomp: dict[str, Any]) -> set[str]:
    return {n for c in linux_seccomp["syscalls"] for n in c["names"]}


def allowed(linux_seccomp: dict[str, Any]) -> set[str]:
    return {
        n
        for c in linux_seccomp["syscalls"]
        if c["action"] == "SCMP_ACT_ALLOW" and not c.get("args")
        for n in c["names"]
    }


def test_default_profile_for_docker_caps() -> None:
    s = seccomp.spec_seccomp(DEFAULT_CAPABILITIES, "amd64", kernel=(6, 1))
    assert s["defaultAction"] == "SCMP_ACT_ERRNO"
    assert s.get("defaultErrnoRet", errno.EPERM) == errno.EPERM  # Docker 20.10's: implied
    # x32 is left out (off in Debian's kernels): its syscalls get the bad-arch action
    assert s["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    ok = allowed(s)
    assert {"read", "write", "execve", "chroot", "arch_prctl", "ptrace"} <= ok
    # CAP_SYS_ADMIN-only calls are not in the filter: the default action (EPERM) applies.
    for name in ("unshare", "mount", "setns", "keyctl", "add_key", "bpf", "reboot"):
        assert name not in names(s), name
    (clone3,) = [c for c in s["syscalls"] if c["names"] == ["clone3"]]
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}
    (clone,) = [c for c in s["syscalls"] if c["names"] == ["clone"]]
    assert clone["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    assert "s390_runtime_instr" not in names(s)


def test_includes_and_excludes() -> None:
    admin = seccomp.spec_seccomp([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"], "amd64", kernel=(6, 1))
    assert {"unshare", "mount", "setns", "clone", "clone3"} <= allowed(admin)
    assert not [c for c in admin["syscalls"] if c["names"] == ["clone3"] and c.get("errnoRet")]
    old = seccomp.spec_seccomp(DEFAULT_CAPABILITIES, "amd64", kernel=(4, 4))
    assert "ptrace" not in names(old)  # minKernel 4.8
    arm = seccomp.spec_seccomp(DEFAULT_CAPABILITIES, "arm64", kernel=(6, 1))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in names(arm) and "cacheflush" in names(arm)
    assert "chroot" not in names(seccomp.spec_seccomp(["CAP_CHOWN"], "amd64", kernel=(6, 1)))


def test_parse_kernel() -> None:
    assert seccomp.parse_kernel("6.1.0-13-amd64") == (6, 1)
    assert seccomp.parse_kernel("4.8") == (4, 8)
    with pytest.raises(OcibuildError):
        seccomp.parse_kernel("x.y")


def test_profile_is_package_data() -> None:
    profile = seccomp.default_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and len(profile["syscalls"]) > 10
    json.dumps(profile)


def _run_filtered(program: bytes, calls: list[tuple[int, tuple[int, ...]]]) -> list[int]:
    """Load ``program`` in a forked child, make the raw ``calls``; their errnos (0 = ok)."""
    libc = ctypes.CDLL(None, use_errno=True)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(rfd)
            buf = ctypes.create_string_buffer(program, len(program))
            prog = SockFprog(len(program) // 8, ctypes.addressof(buf))
            if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
                os._exit(2)
            if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
                os._exit(3)
            out = []
            for nr, args in calls:
                ctypes.set_errno(0)
                rc = libc.syscall(ctypes.c_long(nr), *map(ctypes.c_ulong, args))
                out.append(ctypes.get_errno() if rc == -1 else 0)
            os.write(wfd, json.dumps(out).encode())
            os._exit(0)
        except BaseException:
            os._exit(4)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result: list[int] = json.loads(data)
    return result


@pytest.mark.skipif(not X86_64, reason="raw syscall numbers below are x86_64's")
def test_compiled_filter_blocks_what_the_profile_blocks() -> None:
    program = seccomp.compile_bpf(seccomp.spec_seccomp(DEFAULT_CAPABILITIES))
    assert len(program) % 8 == 0 and len(program) > 8 * 100
    clone_newuts = 0x04000000
    af_inet, sock_stream = 2, 1
    results = _run_filtered(
        program,
        [
            (39, ()),  # getpid
            (272, (clone_newuts,)),  # unshare
            (248, (0, 0, 0, 0, 0)),  # add_key
            (250, (0,)),  # keyctl
            (435, (0, 0)),  # clone3: ENOSYS so that libc falls back to clone
            (41, (af_inet, sock_stream, 0)),  # socket(AF_INET)
            (135, (0xFFFFFFFF,)),  # personality(query)
        ],
    )
    assert results == [0, errno.EPERM, errno.EPERM, errno.EPERM, errno.ENOSYS, 0, 0]


def test_compile_rejects_bad_input() -> None:
    with pytest.raises(OcibuildError, match="action"):
        seccomp.compile_bpf({"defaultAction": "SCMP_ACT_NOPE"})
    with pytest.raises(OcibuildError, match="architecture"):
        seccomp.compile_bpf({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z"]})
    bad_op = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "op": "X"}]}
        ],
    }
    with pytest.raises(OcibuildError, match="comparison"):
        seccomp.compile_bpf(bad_op)


@pytest.mark.skipif(not X86_64, reason="raw syscall numbers below are x86_64's")
def test_same_index_conditions_are_alternatives() -> None:
    """Two conditions on one argument index are OR-ed (runc's rule), not AND-ed."""
    program = seccomp.compile_bpf(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": errno.EACCES,
                    "args": [
                        {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                        {"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"},
                    ],
                }
            ],
        }
    )
    results = _run_filtered(program, [(135, (8,)), (135, (131072,)), (135, (0xFFFFFFFF,))])
    assert results == [errno.EACCES, errno.EACCES, 0]
