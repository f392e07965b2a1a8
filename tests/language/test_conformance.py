"""The conformance suite (conformance/) as one test: every case identical to buildah 1.28
or to its written BuildKit expectation. About 2.5 minutes on 2 cores (the Debian base
is made once by debootstrap and cached)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, require_root, require_tool


def differing_cases(lines: list[str]) -> list[str]:
    """The harness's ``FAIL case`` lines with the indented differences under each."""
    out, inside = [], False
    for line in lines:
        if line.startswith("FAIL "):
            inside = True
        elif not line.startswith("    "):
            inside = False
        if inside:
            out.append(line)
    return out


def test_conformance_suite(capsys: pytest.CaptureFixture[str]) -> None:
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
    with capsys.disabled():  # the summary (and any differing case) in `make test` output
        print("\nconformance: " + "\n".join([*differing_cases(lines), summary]))
    assert proc.returncode == 0, f"{summary}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert summary.endswith("s") and " 0 failed" in summary, summary
