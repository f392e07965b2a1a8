"""``ocibuild build --platform linux/arm64`` on an amd64 machine: FROM picks the arm64
image of a two-platform index, RUN runs through QEMU's binfmt_misc emulator, the config
says arm64, and TARGET*/BUILD* are BuildKit's (values observed on BuildKit v0.11.6 with
``--opt platform=linux/arm64``, base = this two-platform busybox in a local registry)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from tests.conftest import Ocibuild, read_layout

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the expected values are for an amd64 machine"
)

ARCH_DOCKERFILE = """\
FROM {base}
ARG TARGETARCH
RUN uname -m > /arch && echo "target=$TARGETARCH" >> /arch
"""


def _layout_base(layout: Path) -> str:
    return f"oci-layout://{layout}:latest"


def test_arm64_from_an_oci_layout_index(
    ocb: Ocibuild, multi_layout: Path, context: Path, tmp_path: Path
) -> None:
    (context / "Dockerfile").write_text(ARCH_DOCKERFILE.format(base=_layout_base(multi_layout)))
    out = tmp_path / "out"
    ocb.build(
        context, "--platform", "linux/arm64", "-t", "cross:arm64", "-o", f"type=oci,dest={out}"
    )
    assert ocb.run("cross:arm64", "cat", "/arch").stdout == "aarch64\ntarget=arm64\n"
    layout = read_layout(out)
    assert (layout.config["architecture"], layout.config["os"]) == ("arm64", "linux")
    assert "variant" not in layout.config
    # the same file for this machine: x86_64, and no step hits the arm64 build's cache
    r = ocb.build(context, "-t", "cross:amd64")
    assert "HIT" not in r.stderr.split("RUN", 1)[1]
    assert ocb.run("cross:amd64", "cat", "/arch").stdout == "x86_64\ntarget=amd64\n"
    assert ocb.config("cross:amd64")["architecture"] == "amd64"
    # and arm64 again: every step from the cache, the same image
    again = ocb.build(context, "--platform", "linux/aarch64", "-t", "cross:arm64b")
    assert ocb.config("cross:arm64b")["architecture"] == "arm64"
    docs = json.loads(ocb("images", "--format", "json").stdout)
    plats = {n: d["platform"] for d in docs for n in d["names"]}
    assert (plats["cross:arm64"], plats["cross:amd64"]) == ("linux/arm64", "linux/amd64")
    row = next(
        line for line in ocb("images").stdout.splitlines() if line.startswith("cross:arm64 ")
    )
    assert row.split()[-1] == "linux/arm64"
    assert "MISS" not in again.stderr


def test_buildplatform_stage_and_predefined_args_as_buildkit(
    ocb: Ocibuild, multi_registry: str, context: Path
) -> None:
    (context / "Dockerfile").write_text(
        f"""\
ARG GLOBAL=g-$TARGETARCH-$BUILDARCH
FROM --platform=$BUILDPLATFORM {multi_registry} AS tools
ARG TARGETARCH
ARG BUILDARCH
RUN uname -m > /tools-arch && echo "tools target=$TARGETARCH build=$BUILDARCH" >> /tools-arch
FROM {multi_registry}
ARG GLOBAL
ARG TARGETARCH
ARG TARGETPLATFORM
ARG TARGETVARIANT
ARG BUILDPLATFORM
COPY --from=tools /tools-arch /tools-arch
RUN uname -m > /arch && echo "target=$TARGETARCH tp=$TARGETPLATFORM tv=[$TARGETVARIANT] \
bp=$BUILDPLATFORM global=$GLOBAL undeclared=[$BUILDOS]" >> /arch
"""
    )
    ocb.build(context, "--platform", "linux/arm64", "-t", "cross:bk")
    # BuildKit v0.11.6: the $BUILDPLATFORM stage runs natively but still sees the build's
    # TARGETARCH; BUILDOS is not visible undeclared; the RUN's history lists the ARGs
    assert ocb.run("cross:bk", "cat", "/tools-arch").stdout == (
        "x86_64\ntools target=arm64 build=amd64\n"
    )
    assert ocb.run("cross:bk", "cat", "/arch").stdout == (
        "aarch64\ntarget=arm64 tp=linux/arm64 tv=[] bp=linux/amd64 global=g-arm64-amd64 "
        "undeclared=[]\n"
    )
    config = ocb.config("cross:bk")
    assert config["architecture"] == "arm64"
    assert config["history"][-1]["created_by"].startswith(
        "RUN |5 GLOBAL=g-arm64-amd64 TARGETARCH=arm64 TARGETPLATFORM=linux/arm64 "
        "TARGETVARIANT= BUILDPLATFORM=linux/amd64 /bin/sh -c uname -m > /arch"
    )
    assert [h["created_by"] for h in config["history"][1:6]] == [
        "ARG GLOBAL",
        "ARG TARGETARCH",
        "ARG TARGETPLATFORM",
        "ARG TARGETVARIANT",
        "ARG BUILDPLATFORM",
    ]


def test_a_platform_the_base_lacks_is_a_clear_error(
    ocb: Ocibuild, multi_registry: str, context: Path
) -> None:
    (context / "Dockerfile").write_text(f"FROM {multi_registry}\nRUN true\n")
    r = ocb.build(context, "--platform", "linux/s390x", check=False)
    assert r.returncode == 1, r.stderr
    assert "has no image for linux/s390x" in r.stderr
    assert "platforms it has: linux/amd64, linux/arm64" in r.stderr
    assert "Traceback" not in r.stderr


def test_scratch_stage_takes_the_target_platform(ocb: Ocibuild, context: Path) -> None:
    (context / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    ocb.build(context, "--platform", "linux/arm/v7", "-t", "cross:armv7")
    config = ocb.config("cross:armv7")
    assert (config["architecture"], config.get("variant")) == ("arm", "v7")


def test_image_platform_follows_buildkit(ocb: Ocibuild, multi_registry: str, context: Path) -> None:
    # BuildKit v0.11.6 (observed): with an explicit --platform the image is labelled with
    # it even when the last stage runs on $BUILDPLATFORM; a scratch stage is the target
    # platform's whatever its FROM --platform says
    (context / "Dockerfile").write_text(
        f"FROM --platform=$BUILDPLATFORM {multi_registry}\nRUN uname -m > /m\n"
    )
    ocb.build(context, "--platform", "linux/arm64", "-t", "cross:final")
    assert ocb.config("cross:final")["architecture"] == "arm64"
    assert ocb.run("cross:final", "cat", "/m").stdout == "x86_64\n"
    (context / "Dockerfile").write_text("FROM --platform=linux/arm64 scratch\nCOPY Dockerfile /\n")
    ocb.build(context, "-t", "cross:scratch")
    assert ocb.config("cross:scratch")["architecture"] == "amd64"


def test_from_platform_that_cannot_run_fails_before_the_first_step(
    ocb: Ocibuild, context: Path
) -> None:
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY Dockerfile /\nFROM --platform=linux/sparc scratch\nRUN true\n"
    )
    r = ocb.build(context, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith(
        "error: Dockerfile:3: FROM: platform linux/sparc: unknown architecture 'sparc'\n"
        "  | FROM --platform=linux/sparc scratch\nhint: use one of: linux/amd64, linux/arm64"
    )
    assert "[1/" not in r.stderr
