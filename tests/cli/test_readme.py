"""The README's quick start does what it says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import BUSYBOX, REPO, Ocibuild


def _quick_start() -> list[str]:
    text = (REPO / "README.md").read_text()
    start = text.index("## Quick start")
    section = text[start : text.index("\n## ", start + 1)]
    assert len(section.splitlines()) <= 40  # fits on one screen
    return [line[4:] for line in section.splitlines() if line.startswith("    ")]


def test_quick_start_first_build(ocb: Ocibuild, tmp_path: Path) -> None:
    lines = _quick_start()
    assert lines[0].startswith("make demo") and lines[1].startswith("make test")
    begin = next(i for i, line in enumerate(lines) if "cat > app/Dockerfile <<'DF'" in line)
    end = lines.index("DF", begin)
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(BUSYBOX, app / "busybox")
    (app / "Dockerfile").write_text("\n".join(lines[begin + 1 : end]) + "\n")
    commands = [line.split("#")[0].split() for line in lines[end + 1 :]]
    assert commands[0] == ["ocibuild", "build", "-t", "app:1", "app"]
    built = ocb.build(app, "-t", "app:1")
    assert built.stdout.strip().startswith("sha256:")
    assert commands[1] == ["ocibuild", "run", "app:1"]
    assert ocb("run", "app:1").stdout == "hello from app\n"
    assert "app:1" in ocb("images").stdout
    proc = subprocess.run(
        f"{sys.executable} -m ocibuild build -q -o - {app} | tar t",
        shell=True,
        capture_output=True,
        text=True,
        env={"OCIBUILD_ROOT": str(ocb.root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        stdin=subprocess.DEVNULL,
    )
    assert "bin/busybox" in proc.stdout.split(), proc.stderr
