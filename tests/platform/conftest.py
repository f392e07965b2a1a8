"""A two-platform busybox base (linux/amd64 + linux/arm64) for the multi-platform tests.

The amd64 busybox is this machine's (/bin/busybox, Debian's busybox-static); the arm64 one
is Debian's busybox-static for arm64, fetched once with ``apt-get download`` and unpacked
with ``dpkg-deb -x`` into CACHE (kept between runs). The layout is written by hand here
(gzip layers, OCI manifests, an OCI index with platform descriptors), so nothing of
ocibuild makes its own input. RUN for arm64 needs QEMU's aarch64 emulator registered in
binfmt_misc with the fix-binary flag (qemu-user-static + binfmt-support, in the Makefile's
SYSTEM_PACKAGES); the tests skip only when binfmt_misc cannot be used here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUSYBOX, require_root, require_tool

CACHE = Path("/var/tmp/ocibuild-platform")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
APPLETS = ("sh", "uname", "cat", "echo", "ls", "env", "mkdir", "true", "test", "grep")


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def arm64_busybox() -> Path:
    """Debian's arm64 busybox-static binary, fetched once into CACHE."""
    binary = CACHE / "arm64" / "bin" / "busybox"
    if binary.exists():
        return binary
    require_tool("apt-get")
    CACHE.mkdir(parents=True, exist_ok=True)
    foreign = subprocess.run(
        ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True, check=True
    ).stdout.split()
    if "arm64" not in foreign:
        subprocess.run(["dpkg", "--add-architecture", "arm64"], check=True)
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
    for stale in CACHE.glob("busybox-static*.deb"):
        stale.unlink()
    subprocess.run(
        ["apt-get", "download", "busybox-static:arm64"],
        cwd=CACHE,
        check=True,
        capture_output=True,
    )
    (deb,) = CACHE.glob("busybox-static*arm64.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE / "arm64")], check=True)
    assert binary.exists(), f"{deb} holds no bin/busybox"
    return binary


def require_emulator(arch: str = "aarch64") -> None:
    """binfmt_misc mounted and qemu-ARCH registered with the fix-binary flag, or skip."""
    require_root()
    if not (BINFMT / "register").exists():
        proc = subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True
        )
        if proc.returncode != 0:
            pytest.skip(f"binfmt_misc cannot be mounted here: {proc.stderr.decode().strip()}")
    entry = BINFMT / f"qemu-{arch}"
    if not entry.exists() and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", f"qemu-{arch}"], capture_output=True)
    if not entry.exists():
        pytest.skip(
            f"no qemu-{arch} emulator in binfmt_misc (apt-get install qemu-user-static "
            "binfmt-support; make system does)"
        )
    lines = entry.read_text().splitlines()
    assert "enabled" in lines, f"{entry} is disabled"
    assert any(line.startswith("flags:") and "F" in line for line in lines), lines


def _layer(busybox: Path) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tf.addfile(info)
        data = busybox.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tf.addfile(info, io.BytesIO(data))
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tf.addfile(info)
        passwd = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size, info.mode = len(passwd), 0o644
        tf.addfile(info, io.BytesIO(passwd))
    return raw.getvalue()


def _put(layout: Path, data: bytes) -> dict[str, Any]:
    digest = _sha(data)
    (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def write_layout(layout: Path, binaries: dict[str, Path]) -> None:
    """An OCI layout whose index.json names one OCI index (tag ``latest``) over one
    busybox image per architecture in ``binaries``."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entries = []
    for arch, binary in binaries.items():
        tar = _layer(binary)
        layer = _put(layout, gzip.compress(tar, mtime=0))
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [_sha(tar)]},
            "history": [{"created_by": f"busybox {arch} (test base)"}],
        }
        cdesc = _put(layout, json.dumps(config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cdesc},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
        }
        mdesc = _put(layout, json.dumps(manifest).encode())
        entries.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **mdesc,
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }
    idesc = _put(layout, json.dumps(index).encode())
    top = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                **idesc,
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(top))


@pytest.fixture(scope="session")
def multi_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-platform busybox base as an OCI layout (amd64 + arm64)."""
    require_emulator()
    layout = tmp_path_factory.mktemp("multi") / "layout"
    write_layout(layout, {"amd64": Path(BUSYBOX), "arm64": arm64_busybox()})
    return layout


@pytest.fixture(scope="session")
def multi_registry(multi_layout: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The two-platform base pushed (as one index, by skopeo) to a registry of its own;
    yields the reference."""
    from tests.registry.server import Registry

    skopeo = require_tool("skopeo")
    require_tool("docker-registry")
    reg = Registry(tmp_path_factory.mktemp("multireg"), htpasswd=False)
    reg.start()
    try:
        ref = f"{reg.host}/platform/busybox:multi"
        subprocess.run(
            [
                skopeo,
                "copy",
                "--all",
                "--dest-tls-verify=false",
                f"oci:{multi_layout}:latest",
                f"docker://{ref}",
            ],
            check=True,
            capture_output=True,
        )
        yield ref
    finally:
        reg.stop()
