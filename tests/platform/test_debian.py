"""A two-platform index built from a two-platform Debian base held in a local registry.

The base is ``conformance.multiarch``'s: ``debootstrap --variant=minbase bookworm`` for
amd64 and arm64 (the arm64 second stage through QEMU), one image per architecture under
one OCI index, cached between runs in the conformance cache (/var/tmp/ocibuild-conformance;
made once, about 3 minutes). It is pushed (as one index, by skopeo) to a registry of the
test's own; ocibuild pulls each platform's image from it.

Slow (two 200 MB bases, RUN under emulation): marked ``platform_debian``, left out of
``make test``; ``make test-platform`` runs them.
"""

from __future__ import annotations

import json
import platform
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ocibuild, require_tool
from tests.platform.conftest import require_emulator

pytestmark = [
    pytest.mark.platform_debian,
    pytest.mark.skipif(
        platform.machine() != "x86_64", reason="the expected values are for an amd64 machine"
    ),
]

ELF_MACHINE = {"amd64": 62, "arm64": 183}  # e_machine: EM_X86_64, EM_AARCH64
UNAME = {"amd64": "x86_64", "arm64": "aarch64"}


@pytest.fixture(scope="module")
def debian_ref(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The two-platform Debian base in a registry of its own; yields its reference."""
    from conformance.multiarch import debian_index_layout
    from tests.registry.server import Registry

    require_emulator()
    require_tool("debootstrap")
    skopeo = require_tool("skopeo")
    require_tool("docker-registry")
    layout = debian_index_layout()
    reg = Registry(tmp_path_factory.mktemp("debreg"), htpasswd=False)
    reg.start()
    try:
        ref = f"{reg.host}/platform/debian:bookworm"
        subprocess.run(
            [skopeo, "copy", "--all", "--dest-tls-verify=false",
             f"oci:{layout}:bookworm", f"docker://{ref}"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield ref
    finally:
        reg.stop()


def _json(layout: Path, digest: str) -> Any:
    return json.loads((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_text())


def _file(layout: Path, manifest: dict[str, Any], name: str) -> bytes:
    """``name`` as the image's layers leave it (the last layer holding it)."""
    for layer in reversed(manifest["layers"]):
        with tarfile.open(layout / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]) as tf:
            for member in (name, "./" + name):
                try:
                    f = tf.extractfile(member)
                except KeyError:
                    continue
                if f is not None:
                    return f.read()
    raise AssertionError(f"{name} in no layer")


def test_debian_two_platform_index(
    ocb: Ocibuild, debian_ref: str, context: Path, tmp_path: Path
) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {debian_ref}\n"
        "ARG TARGETPLATFORM BUILDPLATFORM\n"
        'RUN echo "$(uname -m) $(dpkg --print-architecture) $TARGETPLATFORM $BUILDPLATFORM"'
        " > /arch && dpkg-query -W -f='${Architecture}\\n' dpkg coreutils > /dpkg-arch\n"
    )
    out = tmp_path / "out"
    ocb.build(
        context,
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "debian-multi:built",
        "--output",
        f"type=oci,dest={out}",
    )
    (top,) = json.loads((out / "index.json").read_text())["manifests"]
    index = _json(out, top["digest"])
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    for desc in index["manifests"]:
        arch = desc["platform"]["architecture"]
        manifest = _json(out, desc["digest"])
        config = _json(out, manifest["config"]["digest"])
        assert (config["architecture"], config["os"]) == (arch, "linux")
        assert "variant" not in config
        assert _file(out, manifest, "arch").decode() == (
            f"{UNAME[arch]} {arch} linux/{arch} linux/amd64\n"
        )
        assert _file(out, manifest, "dpkg-arch").decode() == f"{arch}\n{arch}\n"
        # the base's own files are that platform's: dpkg is an ELF for its machine
        elf = _file(out, manifest, "usr/bin/dpkg")
        assert elf[:4] == b"\x7fELF"
        assert int.from_bytes(elf[18:20], "little") == ELF_MACHINE[arch], arch


def test_debian_arm64_alone(ocb: Ocibuild, debian_ref: str, context: Path) -> None:
    """A single cross-platform build: the store's image is arm64, its RUN ran emulated."""
    (context / "Dockerfile").write_text(
        f"FROM {debian_ref}\nRUN dpkg --print-architecture > /arch && uname -m >> /arch\n"
    )
    image = ocb.build(context, "--platform", "linux/arm64", "-t", "debian-arm:built").image_id
    config = ocb.config(image)
    assert (config["architecture"], config["os"]) == ("arm64", "linux")
    assert ocb.run(image, "cat", "/arch").stdout == "arm64\naarch64\n"
