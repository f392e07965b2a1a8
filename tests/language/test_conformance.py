"""The conformance suite (conformance/) as one test: ocibuild against the real BuildKit's
results recorded in conformance/goldens/ (no BuildKit needed here).

Every case must be identical to BuildKit v0.11.6's golden, or to its written expectation
(only where v0.11.6 cannot be the reference), except the cases listed in
conformance/known_differences.py (open bugs: each differs, is reported, and does not
fail this test; a listed case that matches again is reported as FIXED). A golden file
older than its case (stale) counts as differing. About 4 minutes on 2 cores, -j3 (the
Debian base is made once by debootstrap and cached).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conformance.known_differences import KNOWN
from tests.conftest import REPO, require_root, require_tool


def report_lines(lines: list[str]) -> list[str]:
    """The lines of the harness's report worth showing in `make test` output."""
    keep = ("DIFF ", "FIXED ", "NOTE ")
    out, inside = [], False
    for line in lines:
        if line.startswith(keep):
            inside = line.startswith("DIFF ")
            out.append(line)
        elif inside and line.startswith("    "):
            out.append(line)
        else:
            inside = False
    return out


def test_known_differences_name_real_cases() -> None:
    from conformance.cases import all_cases

    names = {c.name for c in all_cases()}
    assert not set(KNOWN) - names, f"known_differences lists no such case: {set(KNOWN) - names}"


def test_conformance_suite(capsys: pytest.CaptureFixture[str]) -> None:
    require_root()
    require_tool("debootstrap")
    require_tool("zstd")
    proc = subprocess.run(
        [sys.executable, "-m", "conformance.harness", "-j", "3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    lines = proc.stdout.strip().splitlines()
    summary = lines[-1] if lines else proc.stderr
    with capsys.disabled():  # the summary (and any differing case) in `make test` output
        print("\nconformance: " + "\n".join([*report_lines(lines), summary]))
    assert "identical to BuildKit" in summary, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"{summary}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    # nothing differs (else only cases of known_differences, none new)
    assert " differing " not in summary or " 0 new) in " in summary, summary
