"""`ocibuild run` as docker run users expect it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Ocibuild


def _run(ocb: Ocibuild, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocibuild", "run", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env={**os.environ, "OCIBUILD_ROOT": str(ocb.root)},
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def test_stdin_is_passed_through(ocb: Ocibuild, base_image: str) -> None:
    r = _run(ocb, base_image, "cat", stdin=b"hi\n")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = _run(ocb, "-i", base_image, "wc", "-l", stdin=b"1\n2\n3\n")
    assert r.stdout.strip() == "3"


def test_env_workdir_user_volume_entrypoint_network(
    ocb: Ocibuild, base_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_HERE", "here")
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    tmp_path.chmod(0o755)
    (shared / "shared.txt").write_text("from the host\n")
    script = "pwd; id -u; echo $FOO $FROM_HERE; cat /mnt/shared.txt; touch /mnt/new"
    r = _run(
        ocb,
        "-w",
        "/tmp",
        "-u",
        "1000",
        "-e",
        "FOO=bar",
        "-e",
        "FROM_HERE",
        "-v",
        f"{shared}:/mnt:ro",
        base_image,
        "sh",
        "-c",
        script,
    )
    # (touch's error may come first: busybox applets buffer their standard output)
    lines = [line for line in r.stdout.splitlines() if not line.startswith("touch:")]
    assert lines == ["/tmp", "1000", "bar here", "from the host"], r.stdout + r.stderr
    assert "Read-only file system" in r.stdout
    assert not (shared / "new").exists()
    r = _run(ocb, "--entrypoint", "echo", base_image, "a", "b")
    assert r.stdout == "a b\n"
    r = _run(ocb, "--network", "none", base_image, "sh", "-c", "ls /sys/class/net")
    assert r.stdout.split() == ["lo"]


def test_missing_and_non_executable_commands(ocb: Ocibuild, base_image: str) -> None:
    r = _run(ocb, base_image, "no-such-command")
    assert r.returncode == 127
    assert r.stderr.count("no-such-command") == 1  # the error once, not the runtime's too
    assert r.stdout == ""
    r = _run(ocb, base_image, "/etc/passwd")
    assert r.returncode == 126
    assert r.stderr.startswith("error: cannot run the command: ")
    assert r.stderr.count("\n") == 1


def test_exit_status_and_tty(ocb: Ocibuild, base_image: str) -> None:
    assert _run(ocb, base_image, "sh", "-c", "exit 7").returncode == 7
    r = _run(ocb, "-t", base_image, "true")
    assert r.returncode == 1 and "-t (a terminal" in r.stderr
