"""``ocibuild doctor --platform P``: whether builds for P can RUN here, and how to fix it."""

from __future__ import annotations

import platform

import pytest

from tests.conftest import Ocibuild
from tests.platform.conftest import require_emulator


@pytest.mark.skipif(platform.machine() != "x86_64", reason="an amd64 machine is assumed")
def test_doctor_says_how_each_platform_runs(ocb: Ocibuild) -> None:
    require_emulator()
    r = ocb("doctor", "--platform", "linux/arm64,linux/amd64")
    assert "[  ok] platform linux/arm64: runs through the emulator qemu-aarch64" in r.stdout
    assert "fix-binary" in r.stdout
    assert "[  ok] platform linux/amd64: runs natively on this machine" in r.stdout
    bad = ocb("doctor", "--platform", "linux/sparc9", "--platform", "windows/amd64", check=False)
    assert bad.returncode == 1
    assert "[FAIL] platform linux/sparc9: platform linux/sparc9: unknown architecture" in bad.stdout
    assert "fix: use one of: linux/amd64, linux/arm64" in bad.stdout
    assert "[FAIL] platform windows/amd64" in bad.stdout
    assert bad.stdout.rstrip().endswith("result: missing requirements (FAIL above)")
