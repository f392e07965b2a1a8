"""``ocibuild run -t`` as an ordinary user (native-rootless): the process gets a terminal
from both OCI runtimes, and the last output of a quick process comes through (under
crun, ocibuild relays the terminal's master end that crun hands over)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX
from tests.isolation.conftest import Builder
from tests.platform.conftest import write_layout


@pytest.mark.skipif(platform.machine() != "x86_64", reason="an amd64 busybox is assumed")
@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_rootless_run_with_a_terminal(
    rootless_builder: Builder, shared_dir: Path, runtime: str
) -> None:
    layout, ctx = shared_dir / "tty-layout", shared_dir / "tty-ctx"
    if not layout.exists():
        write_layout(layout, {"amd64": Path(BUSYBOX)})
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM oci-layout://{layout}:latest\n")
        for path in [layout, *layout.rglob("*"), ctx, *ctx.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        rootless_builder("build", "-q", "-t", "tty", str(ctx))
    for _ in range(10):
        r = rootless_builder(
            "run", "--rm", "--runtime", runtime, "-t", "tty",
            "sh", "-c", "test -t 0 && test -t 1 && echo on-a-tty; exit 3",
            check=False,
        )  # fmt: skip
        assert (r.returncode, r.stdout.replace("\r", "")) == (3, "on-a-tty\n"), r.stderr
