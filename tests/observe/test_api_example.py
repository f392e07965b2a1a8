"""The documented Python API: examples/api_loop.py runs and prints what it says; the
package lists its API; step records carry the time split and one stage name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, require_root


def test_api_loop_example_runs(tmp_path: Path) -> None:
    require_root()
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "api_loop.py"), "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # the quiet reporter: nothing but the table
    lines = proc.stdout.splitlines()
    assert lines[0].split() == [
        "IMAGE", "STEP", "STAGE", "INSTRUCTION", "CACHE", "SECONDS", "PREPARE", "DIFF"
    ]  # fmt: skip
    rows = [line.split() for line in lines[1:] if not line.startswith("failed:")]
    images = {row[0] for row in rows}
    assert images == {"api-base", "api-app", "api-multi"}
    # the multi-stage build: FROM and the steps after it name their stage the same way
    multi = [row for row in rows if row[0] == "api-multi"]
    assert [row[2] for row in multi] == ["build", "build", "1", "1"]
    run_rows = [row for row in rows if row[3] == "RUN"]
    assert run_rows and all(row[-2] != "-" for row in run_rows)  # a time split for RUN
    failed = [line for line in lines if line.startswith("failed:")]
    assert len(failed) == 1 and failed[0].startswith("failed: api-broken: exit status 3: ")


def test_dir_lists_the_api() -> None:
    import ocibuild

    names = dir(ocibuild)
    for name in ("build", "Options", "Output", "QuietReporter", "StepRecord", "RunError"):
        assert name in names
        assert getattr(ocibuild, name) is not None
    assert ocibuild.__version__[0].isdigit()
    assert "TYPE_CHECKING" not in names and "Any" not in names
