"""A rootless build for linux/arm64: the user namespace's own /proc has no binfmt_misc,
yet RUN goes through the emulator the machine registered (the check runs before the
namespace is entered)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from tests.isolation.conftest import Builder
from tests.platform.conftest import BUSYBOX, arm64_busybox, require_emulator, write_layout


@pytest.mark.skipif(platform.machine() != "x86_64", reason="an amd64 machine is assumed")
def test_rootless_arm64_build(rootless_builder: Builder, shared_dir: Path) -> None:
    require_emulator()
    layout = shared_dir / "multi-layout"
    if not layout.exists():
        write_layout(layout, {"amd64": Path(BUSYBOX), "arm64": arm64_busybox()})
    ctx = shared_dir / "platform-ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(
        f"FROM oci-layout://{layout}:latest\nARG TARGETARCH\n"
        'RUN echo "$(uname -m) $TARGETARCH" > /arch\n'
    )
    for path in [layout, *layout.rglob("*"), ctx, *ctx.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    rootless_builder("build", "--platform", "linux/arm64", "-t", "rl:arm64", str(ctx))
    assert rootless_builder("run", "--rm", "rl:arm64", "cat", "/arch").stdout == ("aarch64 arm64\n")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="an amd64 machine is assumed")
def test_rootless_two_platforms_at_once(rootless_builder: Builder, shared_dir: Path) -> None:
    """Both platforms built at once in the user namespace (its threads share the build's
    mount namespace); the store records the index."""
    require_emulator()
    layout = shared_dir / "multi-layout"
    if not layout.exists():
        write_layout(layout, {"amd64": Path(BUSYBOX), "arm64": arm64_busybox()})
    ctx = shared_dir / "platform-multi-ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(f"FROM oci-layout://{layout}:latest\nRUN uname -m > /arch\n")
    for path in [layout, *layout.rglob("*"), ctx, *ctx.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    r = rootless_builder("build", "--platform", "linux/amd64,linux/arm64",
                         "--platform-jobs", "2", "-t", "rl:multi", str(ctx))  # fmt: skip
    assert "(2 at a time)" in r.stderr
    doc = json.loads(rootless_builder("inspect", "rl:multi").stdout)
    ids = {p["Platform"]: p["Id"] for p in doc["Platforms"]}
    assert list(ids) == ["linux/amd64", "linux/arm64"] and doc["Id"] == ids["linux/amd64"]
    for plat, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        assert rootless_builder("run", "--rm", ids[plat], "cat", "/arch").stdout == machine + "\n"
