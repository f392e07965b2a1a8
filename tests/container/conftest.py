"""Fixtures for builds inside containers: podman, a registry with the bases, the ocibuild
image built by ocibuild from the repository's Dockerfile, and the seccomp profile.

Set-up (root; podman 4.3 from Debian): /etc/containers/containers.conf gets the three
settings this VM needs (no CAP_SYS_RESOURCE for podman's default rlimits, hybrid cgroups
that crun refuses) when the file does not exist; ocibuild itself passes no such flag.
The Debian base is a debootstrap root (conformance/bases.py, cached in
/var/tmp/ocibuild-conformance) pushed to a docker-registry on 127.0.0.1 as
``debian:bookworm-slim``, busybox as ``busybox:latest``. The image is built into a store
kept between runs (``$OCIBUILD_CONTAINER_CACHE``, default /var/tmp/ocibuild-container-tests):
a second run rebuilds only from the first changed step (the COPY of the package).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, require_root, require_tool
from tests.registry.server import Registry

pytestmark = pytest.mark.container
CACHE = Path(os.environ.get("OCIBUILD_CONTAINER_CACHE", "/var/tmp/ocibuild-container-tests"))
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
CONF_TEXT = """\
# written by ocibuild's tests/container/conftest.py: this VM lacks CAP_SYS_RESOURCE
# (podman's default rlimits) and has hybrid cgroups (crun refuses them)
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""
IMAGE_NAME = "ocibuild-test:latest"
VOLUME_PREFIX = "ocibuild-test-"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.container)


def timed(what: str, started: float) -> None:
    print(f"\n[timing] {what}: {time.monotonic() - started:.1f}s", file=sys.stderr)


@pytest.fixture(scope="session")
def podman() -> str:
    require_root()
    path = require_tool("podman")
    if not CONTAINERS_CONF.exists():
        CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
        CONTAINERS_CONF.write_text(CONF_TEXT)
    return path


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    require_tool("docker-registry")
    reg = Registry(tmp_path_factory.mktemp("ctr-registry"), htpasswd=False)
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


def _push_layout(layout: Path, tag: str, dest: str) -> None:
    subprocess.run(
        ["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
         f"docker://{dest}"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip


@dataclass(frozen=True)
class Bases:
    debian: str  # 127.0.0.1:PORT/debian:bookworm-slim
    busybox: str  # 127.0.0.1:PORT/busybox:latest


@pytest.fixture(scope="session")
def bases(registry: Registry) -> Bases:
    from conformance.bases import busybox_layout, debian_layout

    require_tool("skopeo")
    require_tool("debootstrap")
    started = time.monotonic()
    debian = f"{registry.host}/debian:bookworm-slim"
    busybox = f"{registry.host}/busybox:latest"
    _push_layout(debian_layout(), "bookworm", debian)
    _push_layout(busybox_layout(), "latest", busybox)
    timed("bases pushed to the registry", started)
    return Bases(debian, busybox)


def host_ocibuild(
    *args: str,
    root: Path,
    check: bool = True,
    timeout: float = 1200,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    full.update({"OCIBUILD_ROOT": str(root), **(env or {})})
    proc = subprocess.run(
        [sys.executable, "-m", "ocibuild", *args],
        capture_output=True, text=True, env=full, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"ocibuild {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
    return proc


@dataclass(frozen=True)
class Image:
    store: Path  # the host store holding ocibuild-test:latest
    image_id: str
    ref: str  # what podman runs (the image ID)


@pytest.fixture(scope="session")
def image(podman: str, bases: Bases) -> Image:
    """The ocibuild image, built by ocibuild (as `make image` does), loaded into podman."""
    store = CACHE / "store"
    wheels = REPO / "build" / "image-wheels"
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels),
         "setuptools>=68", "wheel", "cffi", str(REPO)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    timed("wheels downloaded", started)
    started = time.monotonic()
    proc = host_ocibuild(
        "build", "-q", "--build-arg", f"BASE={bases.debian}", "-t", IMAGE_NAME, str(REPO),
        root=store,
    )  # fmt: skip
    image_id = proc.stdout.strip().splitlines()[-1]
    timed("ocibuild image built by ocibuild", started)
    started = time.monotonic()
    ref = image_id.removeprefix("sha256:")
    have = subprocess.run([podman, "image", "exists", ref], capture_output=True)
    if have.returncode != 0:
        loaded = CACHE / "loaded-image"  # the image an earlier run loaded: replaced
        if loaded.exists():
            old = loaded.read_text().strip()
            subprocess.run([podman, "rmi", "-f", old], capture_output=True)
        loaded.write_text(ref)
        archive = CACHE / "image.tar"
        host_ocibuild("save", IMAGE_NAME, "-o", str(archive), root=store)
        subprocess.run([podman, "load", "-q", "-i", str(archive)], check=True, capture_output=True)
        archive.unlink()
    timed("image loaded into podman", started)
    return Image(store, image_id, ref)


@pytest.fixture(scope="session")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped in-container seccomp profile, generated from Docker's default."""
    path = tmp_path_factory.mktemp("seccomp") / "ocibuild-in-container.json"
    subprocess.run(
        [sys.executable, "-m", "ocibuild.engine", "seccomp-profile", str(path)], check=True
    )
    return path


@pytest.fixture
def volume(podman: str) -> Iterator[str]:
    """A fresh named volume for the in-container store, removed afterwards."""
    name = f"{VOLUME_PREFIX}{os.getpid()}-{time.monotonic_ns()}"
    subprocess.run([podman, "volume", "create", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run([podman, "volume", "rm", "-f", name], capture_output=True)


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    os.chmod(tmp_path, 0o755)
    return ctx


def podman_run(
    podman: str, flags: list[str], ref: str, cmd: list[str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [podman, "run", "--rm", "--network", "host", *flags, ref, *cmd],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Debian's dockerd started by hand (no iptables, no bridge, its own roots and
    socket); the environment that points the docker CLI at it."""
    require_root()
    binary = require_tool("dockerd")
    require_tool("docker")
    work = tmp_path_factory.mktemp("dockerd")
    sock_dir = Path(tempfile.mkdtemp(prefix="ocibuild-test-dockerd-", dir="/run"))
    sock_dir.chmod(0o755)  # the socket reachable by a test user (made 0666 by the test)
    sock = sock_dir / "docker.sock"
    log = open(work / "dockerd.log", "wb")  # noqa: SIM115 - kept by the process
    proc = subprocess.Popen(
        [binary, "--iptables=false", "--bridge=none", f"--data-root={work / 'data'}",
         f"--exec-root={work / 'exec'}", f"--host=unix://{sock}",
         f"--pidfile={work / 'docker.pid'}"],
        stdout=log, stderr=log,
    )  # fmt: skip
    log.close()
    env = {"DOCKER_HOST": f"unix://{sock}"}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = subprocess.run(
                ["docker", "version", "--format", "{{.Server.Version}}"],
                capture_output=True, env={**os.environ, **env},
            )  # fmt: skip
            if ready.returncode == 0:
                break
            if proc.poll() is not None:
                pytest.skip(f"dockerd did not start: {(work / 'dockerd.log').read_text()[-500:]}")
            time.sleep(0.5)
        else:
            pytest.skip("dockerd did not answer within 60 s")
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # dockerd 20.10 leaves its default netns bind mount (exec/netns/default) behind
        with open("/proc/self/mounts", encoding="utf-8") as f:
            left = [line.split()[1] for line in f if line.split()[1].startswith(str(work))]
        for target in reversed(left):
            subprocess.run(["umount", "-l", target], capture_output=True)
        sock.unlink(missing_ok=True)
        sock_dir.rmdir()
