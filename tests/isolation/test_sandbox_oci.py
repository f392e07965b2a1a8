"""The RUN sandbox under runc and crun, as root and rootless: seccomp, devices, network.

* seccomp: Docker's default profile is in force: a static probe's unshare, add_key and
  keyctl get EPERM, clone3 ENOSYS; ordinary steps run.
* devices: a step may mknod a block device of the host (CAP_MKNOD is kept, as Docker
  does; in a user namespace the kernel refuses the mknod itself) but can never open it:
  on the rootfs, /dev, /dev/shm, a cache mount and a tmpfs mount, with the overlay,
  fuse-overlayfs and vfs drivers. /dev/null, /dev/zero, /dev/urandom work. Nothing is
  ever written to a device; the node is only opened for reading.
* network: by default a step is in the build's own network namespace: a listener the test
  starts on the host's 127.0.0.1 is out of reach (directly and through slirp4netns'
  gateway 10.0.2.2), ``--network=host`` reaches it (with a warning), ``--network=none``
  has only ``lo``. Outbound connectivity through slirp4netns is proven against a
  listener in a network namespace the test makes itself (a veth pair, 10.213.77.0/30):
  no packet leaves the machine. 169.254.0.0/16 is checked through the routing table
  (``ip route get`` answers "prohibited"), never by connecting.

This machine keeps /dev/net/tun at mode 0600 (as /dev/fuse); slirp4netns, run by the
rootless build, opens it, so the session opens it up (``open_tun`` in conftest.py: 0666,
most distributions' default) and restores it afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocibuild.runtime import etcfiles
from tests.isolation.conftest import Builder

RUNTIMES = ("runc", "crun")
DRIVERS = ("overlay", "fuse-overlayfs", "vfs")

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long rc)
{
    if (rc >= 0)
        printf("probe %s=ok\n", name);
    else if (errno == EPERM)
        printf("probe %s=EPERM\n", name);
    else if (errno == ENOSYS)
        printf("probe %s=ENOSYS\n", name);
    else
        printf("probe %s=errno%d\n", name, errno);
}

int main(void)
{
    errno = 0;
    report("getpid", syscall(SYS_getpid));
    errno = 0;
    report("unshare", syscall(SYS_unshare, CLONE_NEWUSER));
    errno = 0;
    report("add_key", syscall(SYS_add_key, "user", "ocb", "v", 1, -2));
    errno = 0;
    report("keyctl", syscall(SYS_keyctl, 0, -3, 0));
    errno = 0;
    report("clone3", syscall(435, 0, 0));
    return 0;
}
"""

BASE = """\
FROM scratch
COPY busybox probe /bin/
RUN ["/bin/busybox", "--install", "-s", "/bin"]
"""


def host_block_device() -> tuple[int, int]:
    """A block device of the host that root on the host can open for reading.

    The root filesystem's disk first (from /proc/self/mountinfo); this VM refuses even
    root that one, so then the first block device in /sys/dev/block that opens (a
    loop device). The test proves the host can open it, then that a step cannot.
    """
    candidates: list[tuple[int, int]] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/":
                major, minor = fields[2].split(":")
                candidates.append((int(major), int(minor)))
    for name in sorted(os.listdir("/sys/dev/block")):
        major, minor = name.split(":")
        candidates.append((int(major), int(minor)))
    for major, minor in candidates:
        if major == 0:
            continue
        if _host_can_open(major, minor):
            return major, minor
    pytest.skip("no block device root on the host can open (nothing to protect)")


def _host_can_open(major: int, minor: int) -> bool:
    scratch = Path("/tmp") / f"ocb-blk-{os.getpid()}"
    try:
        os.mknod(scratch, 0o600 | 0o060000, os.makedev(major, minor))
        fd = os.open(scratch, os.O_RDONLY)
        os.close(fd)
        return True
    except OSError:
        return False
    finally:
        scratch.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def sandbox_ctx(shared_dir: Path) -> Path:
    """A world-readable context: static busybox and the syscall probe."""
    for tool in ("gcc", "slirp4netns", "crun", "runc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make setup installs it)")
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        pytest.skip("busybox-static is not installed (make setup installs it)")
    ctx = shared_dir / "sandbox-ctx"
    ctx.mkdir()
    shutil.copy(busybox, ctx / "busybox")
    (ctx / "probe.c").write_text(PROBE_C)
    subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(ctx / "probe"), str(ctx / "probe.c")],
        check=True,
        capture_output=True,
    )
    (ctx / "Dockerfile").write_text(BASE)
    for path in [ctx, *ctx.iterdir()]:
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    return ctx


@pytest.fixture(params=["root", "rootless"])
def builder(
    request: pytest.FixtureRequest, open_tun: None, sandbox_ctx: Path, shared_dir: Path
) -> Builder:
    name = "root_builder" if request.param == "root" else "rootless_builder"
    b: Builder = request.getfixturevalue(name)
    b("build", "-t", "sbxbase", str(sandbox_ctx))
    return b


def said(out: str, text: str) -> bool:
    """Did a step print the line ``text`` (not just echo it in its RUN line)?"""
    return any(line.strip() == text for line in out.splitlines())


def build(b: Builder, shared_dir: Path, name: str, text: str, *args: str) -> str:
    """Build ``FROM sbxbase`` + ``text`` (no cache); the step output (stdout+stderr)."""
    ctx = shared_dir / f"ctx-{name}-{b.user or 'root'}"
    ctx.mkdir(exist_ok=True)
    ctx.chmod(0o755)
    (ctx / "Dockerfile").write_text("FROM sbxbase\n" + text)
    (ctx / "Dockerfile").chmod(0o644)
    result = b("build", "--no-cache", *args, str(ctx))
    return result.stdout + result.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_seccomp_default_profile(builder: Builder, shared_dir: Path, runtime: str) -> None:
    out = build(
        builder,
        shared_dir,
        "seccomp",
        "RUN /bin/probe && grep Seccomp: /proc/self/status && echo ordinary > /ok\n",
        "--runtime",
        runtime,
    )
    for expected in (
        "probe getpid=ok",
        "probe unshare=EPERM",
        "probe add_key=EPERM",
        "probe keyctl=EPERM",
        "probe clone3=ENOSYS",
    ):
        assert said(out, expected), out
    assert "Seccomp:\t2" in out, out


def test_security_insecure_is_refused(root_builder: Builder, shared_dir: Path) -> None:
    ctx = shared_dir / "ctx-insecure"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text("FROM scratch\nRUN --security=insecure true\n")
    result = root_builder("build", str(ctx), check=False)
    assert result.returncode == 1
    assert "Dockerfile:2" in result.stderr and "--security=insecure is not allowed" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_device_nodes_cannot_be_opened(
    builder: Builder, shared_dir: Path, runtime: str, driver: str
) -> None:
    major, minor = host_block_device()
    script = (
        "RUN --mount=type=cache,target=/cache --mount=type=tmpfs,target=/scratch "
        'for d in "" /dev /dev/shm /cache /scratch; do '
        f"if mknod $d/blk b {major} {minor} 2>/dev/null; then echo made $d/blk; "
        "if ( exec 3< $d/blk ) 2>/dev/null; then echo OPENED $d/blk; "
        "else echo refused $d/blk; fi; rm -f $d/blk; "
        "else echo no-mknod $d/blk; fi; done; "
        "echo devnull > /dev/null && echo null-works; "
        "head -c 4 /dev/zero | od -An -tx1 | tr -d ' ' | sed 's/^/zero-/'; "
        "head -c 16 /dev/urandom | wc -c | sed 's/^ */urandom-/'\n"
    )
    out = build(
        builder, shared_dir, "dev", script, "--runtime", runtime, "--storage-driver", driver
    )
    for d in ("", "/dev", "/dev/shm", "/cache", "/scratch"):
        assert not said(out, f"OPENED {d}/blk"), out
        assert said(out, f"refused {d}/blk") or said(out, f"no-mknod {d}/blk"), out
        if builder.user is None:  # root keeps CAP_MKNOD: the node is made, and useless
            assert said(out, f"made {d}/blk"), out
    assert said(out, "null-works") and said(out, "zero-00000000"), out
    assert said(out, "urandom-16"), out


class Listener:
    """A TCP listener; records whether anything connected."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def loopback_listener() -> Iterator[Listener]:
    listener = Listener("127.0.0.1")
    yield listener
    listener.close()


PEER_NS = f"ocbtest-{os.getpid()}"
HOST_SIDE, PEER_SIDE = "10.213.77.1", "10.213.77.2"

PEER_SERVER = """
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.listen(4)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hello-from-peer\\n")
    c.close()
"""


@pytest.fixture(scope="module")
def peer_listener() -> Iterator[int]:
    """A listener in a network namespace the test makes (veth to the host's namespace);
    yields its port on PEER_SIDE."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed")
    veth = f"ocbv{os.getpid() % 100000}"
    cmds = [
        ["ip", "netns", "add", PEER_NS],
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", PEER_NS],
        ["ip", "addr", "add", f"{HOST_SIDE}/30", "dev", veth],
        ["ip", "link", "set", veth, "up"],
        ["ip", "-n", PEER_NS, "addr", "add", f"{PEER_SIDE}/30", "dev", "eth0"],
        ["ip", "-n", PEER_NS, "link", "set", "eth0", "up"],
        ["ip", "-n", PEER_NS, "link", "set", "lo", "up"],
    ]
    server = None
    try:
        for cmd in cmds:
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                pytest.skip(f"cannot make the test's peer namespace: {proc.stderr.strip()}")
        server = subprocess.Popen(
            ["ip", "netns", "exec", PEER_NS, "python3", "-c", PEER_SERVER, PEER_SIDE],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        yield int(server.stdout.readline())
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", PEER_NS], capture_output=True)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_network_default_none_host(
    builder: Builder,
    shared_dir: Path,
    runtime: str,
    loopback_listener: Listener,
    peer_listener: int,
) -> None:
    port = loopback_listener.port
    script = f"""\
RUN if nc -w 3 127.0.0.1 {port} </dev/null; then echo default-reached-loopback; \
else echo default-no-loopback; fi
RUN if nc -w 3 10.0.2.2 {port} </dev/null; then echo default-reached-gateway; \
else echo default-no-gateway; fi
RUN ip route | sed 's/^/route: /'; ip route get 169.254.169.254 2>&1 | sed 's/^/metadata: /'; \
cat /etc/resolv.conf | sed 's/^/resolv: /'
RUN nc -w 5 {PEER_SIDE} {peer_listener} </dev/null | sed 's/^/outbound: /'
RUN --network=none ip -o link | sed 's/^/none-link: /'
RUN --network=host nc -w 3 127.0.0.1 {port} </dev/null && echo host-reached-loopback
"""
    before = loopback_listener.connections
    out = build(builder, shared_dir, "net", script, "--runtime", runtime)
    assert said(out, "default-no-loopback") and said(out, "default-no-gateway"), out
    assert not said(out, "default-reached-loopback"), out
    assert not said(out, "default-reached-gateway"), out
    assert said(out, "route: default via 10.0.2.2 dev tap0"), out
    assert said(out, "route: prohibit 169.254.0.0/16"), out
    assert said(out, "metadata: ip: RTNETLINK answers: Permission denied"), out
    with open(etcfiles.HOST_RESOLV_CONF, encoding="utf-8") as f:
        expected = etcfiles.resolv_conf_content(f.read(), "private")
    for line in expected.splitlines():
        assert said(out, f"resolv: {line}"), out
    assert said(out, "outbound: hello-from-peer"), out
    links = [ln for ln in out.splitlines() if ln.strip().startswith("none-link:")]
    assert len(links) == 1 and " lo:" in links[0], out
    assert said(out, "host-reached-loopback"), out
    assert loopback_listener.connections == before + 1  # only the --network=host step
    assert "--network=host shares the host's network" in out, out


def test_build_network_flag(
    root_builder: Builder, open_tun: None, sandbox_ctx: Path, shared_dir: Path
) -> None:
    root_builder("build", "-t", "sbxbase", str(sandbox_ctx))
    listener = Listener("127.0.0.1")
    try:
        script = f"RUN nc -w 3 127.0.0.1 {listener.port} </dev/null && echo reached\n"
        out = build(root_builder, shared_dir, "flag", script, "--network", "host")
        assert said(out, "reached") and listener.connections == 1, out
        assert out.count("shares the host's network") == 1, out
        script = "RUN ip -o link | wc -l | sed 's/^ */links-/'\n"
        assert said(build(root_builder, shared_dir, "flag", script, "--network", "none"), "links-1")
        bad = root_builder("build", "--network", "bridge", str(sandbox_ctx), check=False)
        assert bad.returncode != 0 and "invalid choice: 'bridge'" in bad.stderr
    finally:
        listener.close()
