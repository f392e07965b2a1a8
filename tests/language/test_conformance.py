"""The conformance suite (conformance/) as one test: every case identical to buildah 1.28
or to its written BuildKit expectation. About 2.5 minutes on 2 cores (the Debian base
is made once by debootstrap and cached)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, require_root, require_tool


def test_conformance_suite() -> None:
    require_root()
    require_tool("buildah")
    require_tool("debootstrap")
    require_tool("zstd")
    proc = subprocess.run(
        [sys.executable, "-m", "conformance.harness", "-j", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = proc.stdout.strip().splitlines()
    summary = lines[-1] if lines else proc.stderr
    print("\n" + proc.stdout)  # shown with -s / on failure: the cases that differ
    assert proc.returncode == 0, f"{summary}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert summary.endswith("s") and " 0 failed" in summary, summary
