"""The native-chroot sandbox against hostile images, specs and steps.

Two levels: the sandbox alone (a bundle run by :class:`NativeRunner` on a plain busybox
directory, as root) and real builds (``--isolation native-chroot`` as root, and as the
rootless test user of tests/isolation where noted). Nothing here damages the host: canary
files in tmp dirs, the host's core_pattern read before and after (any write attempted is
of the value it already has), devices only opened for reading.
"""

from __future__ import annotations

import ctypes
import inspect
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocibuild import _native
from ocibuild.errors import RuntimeFailure
from ocibuild.runtime import native
from ocibuild.runtime.bundle import CONFIG_NAME
from ocibuild.runtime.spec import make_spec
from tests.conftest import BUSYBOX, in_child
from tests.isolation.conftest import EPOCH, USER, Builder, ensure_user

pytestmark = pytest.mark.integration

CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")


def _skip_unless_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the native-chroot sandbox needs root (or the rootless re-exec)")
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (make setup installs it)")


# ---------------------------------------------------------------------------------------
# The sandbox alone: a busybox directory and a hand-made spec.


def _busybox_root(path: Path) -> Path:
    (path / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, path / "bin" / "busybox")
    names = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    for name in names.stdout.split():
        if name != "busybox":
            os.symlink("busybox", path / "bin" / name)
    for d in ("etc", "tmp", "root"):
        (path / d).mkdir()
    (path / "tmp").chmod(0o1777)
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return path


def _spec(rootfs: Path, script: str, **kw: Any) -> dict[str, Any]:
    return make_spec(
        rootfs=str(rootfs),
        args=["/bin/sh", "-c", script],
        env=["PATH=/bin"],
        cwd=kw.pop("cwd", "/"),
        uid=0,
        gid=0,
        additional_gids=[],
        hostname="sandbox",
        etc_files={},
        **kw,
    )


def _run(spec: dict[str, Any], bundle: Path) -> tuple[int, str]:
    bundle.mkdir(exist_ok=True)
    (bundle / CONFIG_NAME).write_text(json.dumps(spec))
    out = bytearray()
    status = native.NativeRunner().run(str(bundle), "t", on_output=out.extend)
    return status, out.decode(errors="replace")


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    _skip_unless_root()
    return _busybox_root(tmp_path / "rootfs")


def test_spec_translation_keeps_paths_in_the_container() -> None:
    spec = make_spec(
        rootfs="/store/rootfs", args=["true"], env=[], cwd="/../w/./x", uid=0, gid=0,
        additional_gids=[], hostname="h", etc_files={}, network="none",
        extra_mounts=[{"destination": "../../m//n/..", "type": "tmpfs", "source": "tmpfs"}],
    )  # fmt: skip
    cfg = native.sandbox_config(spec, 1)
    targets = {m.target: m for m in cfg.mounts}
    assert "/m" in targets and all(not t.startswith("/store") for t in targets)
    assert cfg.cwd == "/w/x"
    for dest in ("/proc", "/dev", "/sys"):
        assert targets[dest].kind & _native.M_REAL_DIR, dest
    assert not targets["/dev/pts"].kind & _native.M_REAL_DIR
    assert targets["/dev/null"].kind & _native.M_DEVICE
    assert targets["/proc/keys"].kind == _native.M_MASK
    assert targets["/proc/sys"].kind == _native.M_RO_PATH
    assert (cfg.new_net, cfg.netns_path, cfg.seccomp_bpf) == (True, "", b"")
    spec["linux"]["namespaces"][-1]["path"] = "/run/netns/b"
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    cfg = native.sandbox_config(spec, 1)
    assert (cfg.new_net, cfg.netns_path) == (False, "/run/netns/b")
    assert cfg.seccomp_bpf and len(cfg.seccomp_bpf) % 8 == 0
    spec["linux"]["namespaces"].pop()
    cfg = native.sandbox_config(spec, 1)
    assert (cfg.new_net, cfg.netns_path) == (False, ""), "no network entry: the host's"


@pytest.mark.parametrize("name", ["proc", "sys", "dev"])
def test_symlinked_proc_sys_dev_is_refused(rootfs: Path, tmp_path: Path, name: str) -> None:
    before = CORE_PATTERN.read_text()
    (rootfs / "pp" / "sys" / "kernel").mkdir(parents=True)
    os.symlink("/pp", rootfs / name)
    script = f"echo STEP-RAN; cat {CORE_PATTERN} > {CORE_PATTERN}"
    with pytest.raises(RuntimeFailure) as info:
        _run(_spec(rootfs, script), tmp_path / "b")
    text = info.value.message
    assert f"/{name} in the image is a symlink or not a directory" in text, text
    assert CORE_PATTERN.read_text() == before
    assert os.listdir(rootfs / "pp" / "sys" / "kernel") == []


def test_proc_as_a_file_is_refused(rootfs: Path, tmp_path: Path) -> None:
    (rootfs / "proc").write_text("not a dir")
    with pytest.raises(RuntimeFailure) as info:
        _run(_spec(rootfs, "true"), tmp_path / "b")
    assert "/proc in the image is a symlink or not a directory" in info.value.message


def test_protections_are_applied_and_checked(rootfs: Path, tmp_path: Path) -> None:
    script = (
        "cat /proc/keys | wc -c; echo 1 > /proc/sys/kernel/core_pattern || echo RO-OK;"
        " ls /sys/firmware | wc -l; grep -c . /proc/self/mountinfo > /dev/null && echo MI"
    )
    status, out = _run(_spec(rootfs, script), tmp_path / "b")
    assert status == 0, out
    lines = out.split()
    assert lines[0] == "0", "/proc/keys is masked by /dev/null"
    assert "RO-OK" in out and "Read-only file system" in out
    assert lines[-2] == "0", "/sys/firmware is an empty tmpfs"


def test_mount_inside_proc_is_refused(rootfs: Path, tmp_path: Path) -> None:
    extra = [{"destination": "/proc/sys/kernel", "type": "tmpfs", "source": "tmpfs"}]
    with pytest.raises(RuntimeFailure) as info:
        _run(_spec(rootfs, "true", extra_mounts=extra), tmp_path / "b")
    assert "lies inside /proc or /sys" in info.value.message


def test_mount_target_symlink_in_bound_stage_stays_in_root(rootfs: Path, tmp_path: Path) -> None:
    canary = tmp_path / "host-canary"
    canary.mkdir()
    stage = tmp_path / "stage"
    stage.mkdir()
    os.symlink(str(canary), stage / "link")  # absolute: a host path, read as a root path
    os.symlink("../../../../../../..", stage / "up")
    extra = [
        {"destination": "/m", "type": "bind", "source": str(stage), "options": ["rbind", "ro"]},
        {"destination": "/m/link/sub", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/m/up/tmp/file", "type": "bind", "source": str(stage / "link")},
    ]
    status, out = _run(_spec(rootfs, "ls -d /m/link/sub", extra_mounts=extra), tmp_path / "b")
    assert status == 0, out
    assert list(canary.iterdir()) == [], "nothing created at the host path"
    inside = rootfs / str(canary).lstrip("/") / "sub"
    assert inside.is_dir(), "the target was created inside the root instead"
    assert (rootfs / "tmp" / "file").exists()


def test_mount_target_symlink_exchange_race(rootfs: Path, tmp_path: Path) -> None:
    # CVE-2021-30465: while the sandbox sets up, the bound stage keeps exchanging a real
    # directory with a symlink to a host path. Whatever wins, nothing lands on the host.
    canary = tmp_path / "host-canary"
    canary.mkdir()
    stage = tmp_path / "stage"
    (stage / "x").mkdir(parents=True)
    os.symlink(str(canary), stage / "y")
    extra = [
        {"destination": "/m", "type": "bind", "source": str(stage), "options": ["rbind"]},
        {"destination": "/m/x/sub", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/m/x/file", "type": "bind", "source": "/dev/null", "options": ["bind"]},
    ]
    libc = ctypes.CDLL(None, use_errno=True)
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        x, y = os.fsencode(stage / "x"), os.fsencode(stage / "y")
        while not stop.is_set():
            # renameat2(AT_FDCWD, x, AT_FDCWD, y, RENAME_EXCHANGE)
            if libc.syscall(316, -100, x, -100, y, 2) == 0:
                swaps += 1

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    outcomes = {"ran": 0, "refused": 0}
    try:
        for _ in range(40):
            try:
                _run(_spec(rootfs, "true", extra_mounts=extra), tmp_path / "b")
                outcomes["ran"] += 1
            except RuntimeFailure as exc:
                assert "native-chroot failed to start the process" in exc.message
                outcomes["refused"] += 1
    finally:
        stop.set()
        thread.join()
    assert swaps > 40, "the race did run"
    assert list(canary.iterdir()) == [], f"nothing reached the host ({outcomes})"


def test_created_device_nodes_are_unusable(rootfs: Path, tmp_path: Path) -> None:
    # Host sanity: a zero device node made on the host's own disk works there.
    node = tmp_path / "zero"
    os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    with open(node, "rb") as f:
        assert f.read(1) == b"\0"
    major, minor = _root_disk()
    cache = tmp_path / "cache"
    cache.mkdir()
    extra = [
        {"destination": "/cache", "type": "bind", "source": str(cache), "options": ["rbind"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs"},
    ]
    script = _mknod_script(major, minor, ["/tmp", "/dev", "/cache", "/scratch", "/dev/shm"])
    status, out = _run(_spec(rootfs, script, extra_mounts=extra), tmp_path / "b")
    assert status == 0, out
    verdicts = [line.split()[0] for line in out.splitlines()]
    assert verdicts.count("READ-DENIED") == 10 and "READ-OK" not in verdicts, out
    assert "NULL-OK" in verdicts


def test_device_on_a_submount_of_a_bound_dir_is_unusable(rootfs: Path, tmp_path: Path) -> None:
    # A recursive bind carries the source's submounts: nodev must reach them too.
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)

    def child() -> tuple[bool, int, str]:
        _native.enter_mount_namespace()  # the tmpfs below stays in this child
        _native.mount_fs("tmpfs", str(source / "sub"), "tmpfs")
        node = source / "sub" / "zero"
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
        with open(node, "rb") as f:
            usable_here = f.read(1) == b"\0"
        extra = [
            {"destination": "/m", "type": "bind", "source": str(source), "options": ["rbind", "ro"]}
        ]
        script = "head -c 1 /m/sub/zero > /dev/null && echo SUB-OK || echo SUB-DENIED"
        status, out = _run(_spec(rootfs, script, extra_mounts=extra), tmp_path / "b")
        return usable_here, status, out

    usable_here, status, out = in_child(child)
    assert usable_here, "the node works outside the sandbox"
    assert status == 0 and "SUB-DENIED" in out and "SUB-OK" not in out, out


def test_nodev_remount_keeps_a_read_only_source_read_only(rootfs: Path, tmp_path: Path) -> None:
    source = tmp_path / "ro-src"
    source.mkdir()

    def child() -> tuple[int, str]:
        _native.enter_mount_namespace()
        _native.bind_mount(str(source), str(source), readonly=True)
        extra = [{"destination": "/m", "type": "bind", "source": str(source), "options": ["rbind"]}]
        script = "touch /m/f && echo WROTE || echo REFUSED"
        return _run(_spec(rootfs, script, extra_mounts=extra), tmp_path / "b")

    status, out = in_child(child)
    assert status == 0 and "REFUSED" in out and "Read-only file system" in out, out
    assert list(source.iterdir()) == []


def _root_disk() -> tuple[int, int]:
    """major:minor of the host's root disk (/ itself, else the first real block device)."""
    dev = os.stat("/").st_dev
    if os.major(dev) != 0:
        return os.major(dev), os.minor(dev)
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")):
            major, minor = Path(f"/sys/block/{name}/dev").read_text().split(":")
            return int(major), int(minor)
    pytest.skip("no block device on this machine to aim at")


def _said(build_output: str) -> list[str]:
    """The lines a build's RUN steps printed (the echoed instruction lines left out)."""
    return [
        line.strip()
        for line in build_output.splitlines()
        if line.startswith("  ") and not line.lstrip().startswith(("RUN ", "MISS", "->", "HIT"))
    ]


def _mknod_script(major: int, minor: int, dirs: list[str]) -> str:
    """Per dir: a node for the host's root disk, and one for the memory-backed zero
    device (c 1:5, harmless, and one the host here may open: it tells nodev at work from
    a host that refuses block devices anyway). Each one is only opened for reading."""
    parts = []
    for d in dirs:
        tag = d.strip("/").replace("/", "-")
        for kind, node in ((f"b {major} {minor}", f"{d}/disk-{tag}"), ("c 1 5", f"{d}/zero-{tag}")):
            parts.append(
                f"if mknod {node} {kind}; then if head -c 1 {node} > /dev/null;"
                f" then echo READ-OK {node}; else echo READ-DENIED {node}; fi;"
                f" else echo READ-DENIED {node} mknod; fi"
            )
    parts.append("echo x > /dev/null && head -c 1 /dev/zero | wc -c > /dev/null && echo NULL-OK")
    return "; ".join(parts)


def test_no_fds_leak_and_magic_link_cwd_refused(rootfs: Path, tmp_path: Path) -> None:
    leak = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)  # inheritable, on purpose
    os.set_inheritable(leak, True)
    try:
        status, out = _run(_spec(rootfs, "ls /proc/self/fd | sort -n | xargs"), tmp_path / "b")
        assert status == 0 and out.split() == ["0", "1", "2", "3"], out  # 3: ls's own dir
        with pytest.raises(RuntimeFailure) as info:
            _run(_spec(rootfs, "ls", cwd=f"/proc/self/fd/{leak}"), tmp_path / "b")
        text = info.value.message
        assert f"working directory /proc/self/fd/{leak}: No such file" in text, "fd closed"
        with pytest.raises(RuntimeFailure) as info:
            _run(_spec(rootfs, "ls", cwd="/proc/self/root/tmp"), tmp_path / "b")
        text = info.value.message
        assert "working directory /proc/self/root/tmp: Too many levels" in text
        assert "magic links like /proc/self/fd/N are refused" in text
    finally:
        os.close(leak)


_CAP_SYS_ADMIN = 21
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE = 47, 2


def _raise_inheritable_and_ambient(cap: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (ctypes.c_uint32 * 6)()
    if libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    data[2] |= 1 << cap  # inheritable, low word
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    if libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl ambient raise")


def test_inheritable_and_ambient_capabilities_cleared(rootfs: Path, tmp_path: Path) -> None:
    # CVE-2022-29162: a caller with inheritable/ambient caps must not pass them on.
    def child() -> tuple[int, str, str]:
        _raise_inheritable_and_ambient(_CAP_SYS_ADMIN)
        mine = Path("/proc/self/status").read_text()
        status, out = _run(_spec(rootfs, "grep Cap /proc/self/status"), tmp_path / "b")
        return status, out, mine

    status, out, mine = in_child(child)
    assert status == 0, out
    caps = dict(line.split() for line in out.splitlines() if line.startswith("Cap"))
    assert "CapAmb:\t0000000000000000" not in mine, "the caller did hold ambient caps"
    assert caps["CapInh:"] == caps["CapAmb:"] == "0000000000000000"
    assert caps["CapEff:"] == caps["CapBnd:"] == "00000000a80425fb"


_KEYCTL_C = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    long id = syscall(SYS_keyctl, 10 /* KEYCTL_SEARCH */, -3 /* @s */, "user", argv[1], 0);
    if (id >= 0) {
        char buf[256] = {0};
        syscall(SYS_keyctl, 11 /* KEYCTL_READ */, id, buf, sizeof(buf) - 1);
        printf("FOUND %s\n", buf);
        return 0;
    }
    printf("NOTFOUND %s\n", strerror(errno));
    if (argc > 2) {
        long r = syscall(SYS_add_key, "user", "x", "y", 1, -3);
        printf("ADD_KEY %s\n", r >= 0 ? "ok" : strerror(errno));
    }
    return 0;
}
"""


def _static_keyctl(dest: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (make setup installs it)")
    src = dest.with_suffix(".c")
    src.write_text(_KEYCTL_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(dest), str(src)], check=True)
    dest.chmod(0o755)
    return dest


_KEY_WRAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
assert libc.syscall(250, 1, b"ocb-test-session") >= 0          # KEYCTL_JOIN_SESSION_KEYRING
assert libc.syscall(248, b"user", b"ocb-host-secret", b"s3cret", 6, -3) >= 0  # add_key @s
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_session_keyring_is_fresh(rootfs: Path, tmp_path: Path) -> None:
    keyctl = _static_keyctl(rootfs / "bin" / "keysearch")

    def child() -> tuple[str, str]:
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(250, 1, b"ocb-test-session") >= 0
        assert libc.syscall(248, b"user", b"ocb-host-secret", b"s3cret", 6, -3) >= 0
        on_host = subprocess.run(
            [str(keyctl), "ocb-host-secret"], capture_output=True, text=True
        ).stdout
        status, out = _run(_spec(rootfs, "/bin/keysearch ocb-host-secret"), tmp_path / "b")
        return on_host, f"{status} {out}"

    on_host, out = in_child(child)
    assert on_host.strip() == "FOUND s3cret", "the key is there for the caller"
    assert out.strip().startswith("0 NOTFOUND"), out
    assert "s3cret" not in out


def _seccomp_spec(rootfs: Path, script: str) -> dict[str, Any]:
    from ocibuild.runtime.seccomp import spec_seccomp

    spec = _spec(rootfs, script)
    spec["linux"]["seccomp"] = spec_seccomp(spec["process"]["capabilities"]["bounding"])
    return spec


def test_seccomp_blocks_namespaces_and_keys(rootfs: Path, tmp_path: Path) -> None:
    _static_keyctl(rootfs / "bin" / "keysearch")
    script = (
        "unshare -U true && echo UNSHARE-OK || echo UNSHARE-DENIED;"
        " /bin/keysearch nothing add;"
        " mkdir -p /a/b && echo hi > /a/b/f && cp -a /a /c && chmod 600 /c/b/f"
        " && chown 1:1 /c/b/f && ln -s f /c/b/l && mv /c /d && rm -rf /a && cat /d/b/l"
    )
    status, out = _run(_seccomp_spec(rootfs, script), tmp_path / "b")
    assert status == 0, out
    assert "UNSHARE-DENIED" in out and "Operation not permitted" in out, out
    assert "NOTFOUND Operation not permitted" in out, out
    assert "ADD_KEY Operation not permitted" in out, out
    assert out.rstrip().endswith("hi"), "ordinary file operations still work"
    # without the filter, the same step may create a user namespace
    status, out = _run(_spec(rootfs, "unshare -U true && echo UNSHARE-OK"), tmp_path / "b")
    assert "UNSHARE-OK" in out


def test_seccomp_with_no_new_privileges_as_a_user(rootfs: Path, tmp_path: Path) -> None:
    spec = _seccomp_spec(rootfs, "id -u; unshare -U true || echo UNSHARE-DENIED")
    spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    spec["process"]["noNewPrivileges"] = True
    status, out = _run(spec, tmp_path / "b")
    assert status == 0, out
    assert out.split()[0] == "1000" and "UNSHARE-DENIED" in out


@pytest.fixture
def netns_holder() -> Iterator[int]:
    """A process sitting in a network namespace of its own (its pid)."""
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is not installed")
    proc = subprocess.Popen(["unshare", "--net", "sleep", "120"])
    try:
        for _ in range(100):
            if os.readlink(f"/proc/{proc.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            subprocess.run(["sleep", "0.02"])
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_network_namespace_by_path(rootfs: Path, tmp_path: Path, netns_holder: int) -> None:
    theirs = os.readlink(f"/proc/{netns_holder}/ns/net")
    mine = os.readlink("/proc/self/ns/net")
    show = "readlink /proc/self/ns/net"

    spec = _spec(rootfs, show)
    spec["linux"]["namespaces"].append({"type": "network", "path": f"/proc/{netns_holder}/ns/net"})
    assert _run(spec, tmp_path / "b")[1].strip() == theirs

    assert _run(_spec(rootfs, show), tmp_path / "b")[1].strip() == mine, "no entry: host"
    fresh = _run(_spec(rootfs, show, network="none"), tmp_path / "b")[1].strip()
    assert fresh not in (mine, theirs) and fresh.startswith("net:[")

    spec["linux"]["namespaces"][-1]["path"] = str(tmp_path / "no-such-netns")
    with pytest.raises(RuntimeFailure) as info:
        _run(spec, tmp_path / "b")
    assert "network namespace path does not exist" in info.value.message


# ---------------------------------------------------------------------------------------
# Real builds.


BASE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /tmp /root && chmod 1777 /tmp \\
 && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'root:x:0:' > /etc/group
"""


@pytest.fixture(scope="module")
def shared() -> Iterator[Path]:
    """A world-readable scratch dir (contexts the rootless user can read)."""
    _skip_unless_root()
    path = Path(tempfile.mkdtemp(prefix="ocibuild-sandbox-", dir="/tmp"))
    path.chmod(0o755)
    base = path / "basectx"
    base.mkdir()
    shutil.copy(BUSYBOX, base / "busybox")
    (base / "Dockerfile").write_text(BASE)
    for p in (base, base / "busybox", base / "Dockerfile"):
        p.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def root_ocb(shared: Path) -> Builder:
    builder = Builder(None, shared / "root-store")
    builder("build", "-q", "-t", "sbase", str(shared / "basectx"))
    return builder


@pytest.fixture(scope="module")
def rootless_ocb(shared: Path) -> Iterator[Builder]:
    entry = ensure_user(USER, subids=True)
    data = shared / "rootless-data"
    data.mkdir()
    os.chown(data, entry.pw_uid, entry.pw_gid)
    # As tests/isolation does: the test user may open /dev/fuse (fuse-overlayfs) and
    # /dev/net/tun (slirp4netns for the build's network) for the session.
    modes = {
        d: os.stat(d).st_mode & 0o7777 for d in ("/dev/fuse", "/dev/net/tun") if os.path.exists(d)
    }
    for dev in modes:
        os.chmod(dev, 0o666)
    try:
        builder = Builder(USER, data)
        builder("build", "-q", "-t", "sbase", str(shared / "basectx"))
        yield builder
    finally:
        for dev, mode in modes.items():
            os.chmod(dev, mode)


def _context(shared: Path, name: str, dockerfile: str) -> Path:
    ctx = shared / name
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for p in (ctx, ctx / "Dockerfile"):
        p.chmod(0o755)
    return ctx


NATIVE = ("--isolation", "native-chroot")
WHO = ("root", "rootless")


def _builder(request: pytest.FixtureRequest, who: str) -> Builder:
    b: Builder = request.getfixturevalue("root_ocb" if who == "root" else "rootless_ocb")
    return b


@pytest.mark.parametrize("who", WHO)
def test_build_symlinked_proc_cannot_write_host_sysctls(
    request: pytest.FixtureRequest, shared: Path, who: str
) -> None:
    ocb = _builder(request, who)
    before = CORE_PATTERN.read_text()
    ctx = _context(
        shared,
        f"proclink-{who}",
        # an image without /proc (a RUN leaves one in sbase, as in BuildKit), so the
        # link lands there: the step's tree with a /proc symlink and a shell
        "FROM sbase AS s\n"
        "RUN mkdir -p /x /pp/sys/kernel && ln -s /pp /x/proc && cp -a /bin /etc /x/\n"
        "FROM scratch\n"
        "COPY --from=s /x/ /\n"
        f"RUN echo STEP-$((40+2)); cat {CORE_PATTERN} > {CORE_PATTERN}\n",
    )
    res = ocb("build", *NATIVE, "--no-cache", str(ctx), check=False)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert "/proc in the image is a symlink or not a directory" in res.stderr, res.stderr
    assert "Dockerfile:5" in res.stderr
    assert "STEP-42" not in res.stdout + res.stderr
    assert CORE_PATTERN.read_text() == before


@pytest.mark.parametrize("who", WHO)
def test_build_mount_target_through_stage_symlink_stays_inside(
    request: pytest.FixtureRequest, shared: Path, who: str
) -> None:
    ocb = _builder(request, who)
    canary = shared / f"canary-{who}"
    canary.mkdir(exist_ok=True)
    canary.chmod(0o777)  # writable by the rootless user too: only the sandbox stops it
    ctx = _context(
        shared,
        f"mountlink-{who}",
        "FROM sbase AS s\n"
        f"RUN mkdir /d && ln -s {canary} /d/link\n"
        "FROM sbase\n"
        "RUN --mount=type=bind,from=s,source=/d,target=/m"
        " --mount=type=tmpfs,target=/m/link/sub"
        f" ls -d {canary}/sub && echo CONTAINED\n",
    )
    res = ocb("build", *NATIVE, "--no-cache", str(ctx), check=False)
    assert list(canary.iterdir()) == [], "nothing created at the host path"
    assert "Traceback" not in res.stderr
    assert res.returncode == 0 and "CONTAINED" in _said(res.stderr), res.stderr


DRIVERS = ("overlay", "fuse-overlayfs", "vfs")


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("who", WHO)
def test_build_mknod_host_disk_unreadable(
    request: pytest.FixtureRequest, shared: Path, who: str, driver: str
) -> None:
    if driver == "fuse-overlayfs" and shutil.which("fuse-overlayfs") is None:
        pytest.skip("fuse-overlayfs is not installed")
    ocb = _builder(request, who)
    major, minor = _root_disk()
    script = _mknod_script(major, minor, ["/tmp", "/dev", "/c", "/t"])
    ctx = _context(
        shared,
        f"mknod-{who}-{driver}",
        f"FROM sbase\nRUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t {script}\n",
    )
    res = ocb("build", *NATIVE, "--storage-driver", driver, "--no-cache", str(ctx))
    out = res.stdout + res.stderr
    verdicts = [line.split()[0] for line in _said(out) if line.startswith(("READ-", "NULL-"))]
    assert verdicts == ["READ-DENIED"] * 8 + ["NULL-OK"], out


def test_build_does_not_see_the_callers_session_keys(
    request: pytest.FixtureRequest, shared: Path
) -> None:
    ocb = _builder(request, "root")
    ctx = _context(shared, "keyring", "FROM sbase\nCOPY keysearch /bin/\n")
    _static_keyctl(ctx / "keysearch")
    (ctx / "Dockerfile").write_text(
        "FROM sbase\nCOPY keysearch /bin/\nRUN /bin/keysearch ocb-host-secret\n"
    )
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "SOURCE_DATE_EPOCH": EPOCH,
        "OCIBUILD_ROOT": str(ocb.store),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    cmd = [sys.executable, "-c", _KEY_WRAPPER, sys.executable, "-m", "ocibuild", "build"]
    found = subprocess.run(
        [sys.executable, "-c", _KEY_WRAPPER, str(ctx / "keysearch"), "ocb-host-secret"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert found.stdout.strip() == "FOUND s3cret", "the caller's session holds the key"
    res = subprocess.run(
        [*cmd, *NATIVE, "--no-cache", str(ctx)], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr
    said = _said(res.stderr)
    found = [x for x in said if "FOUND" in x]
    assert len(found) == 1 and found[0].startswith("NOTFOUND"), res.stderr
    assert "s3cret" not in res.stderr + res.stdout


@pytest.mark.parametrize("who", WHO)
def test_build_seccomp_default_profile(
    request: pytest.FixtureRequest, shared: Path, who: str
) -> None:
    if "seccomp" not in inspect.signature(make_spec).parameters:
        pytest.skip("this branch's RUN spec has no seccomp profile (the sec-oci branch adds it)")
    ocb = _builder(request, who)
    ctx = _context(
        shared,
        f"seccomp-{who}",
        "FROM sbase\nRUN unshare -U true && echo UNSHARE-OK || echo UNSHARE-DENIED\n"
        "RUN mkdir -p /a/b && echo hi > /a/b/f && cp -a /a /c && cat /c/b/f\n",
    )
    res = ocb("build", *NATIVE, "--no-cache", str(ctx))
    said = _said(res.stderr)
    assert "UNSHARE-DENIED" in said and "UNSHARE-OK" not in said, res.stderr
    assert "hi" in said


def test_build_security_insecure_is_refused(request: pytest.FixtureRequest, shared: Path) -> None:
    ocb = _builder(request, "root")
    ctx = _context(shared, "insecure", "FROM sbase\nRUN --security=insecure true\n")
    res = ocb("build", *NATIVE, str(ctx), check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "RUN --security=insecure is not allowed" in res.stderr
