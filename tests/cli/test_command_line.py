"""The command line as a user types it: docker build conventions, clear set-up errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Ocibuild


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("--check", "--check-reproducible"), ("--tar", "--target"), ("--no-cac", "--no-cache")],
)
def test_abbreviated_long_options_are_refused(
    ocb: Ocibuild, context: Path, typed: str, meant: str
) -> None:
    (context / "Dockerfile").write_text("FROM scratch\n")
    args = [typed, "x"] if meant == "--target" else [typed]
    r = ocb.build(context, *args, check=False)
    assert r.returncode == 1
    assert f"unrecognized arguments: {typed}" in r.stderr
    assert r.stdout == ""  # nothing was built


def test_version(ocb: Ocibuild) -> None:
    r = ocb("--version")
    assert r.stdout.startswith("ocibuild ")
    assert r.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("MyApp:latest", "repository name must be lowercase"),
        ("app:1:2", "invalid name"),
        ("my app", "invalid image reference"),
        ("app@sha256:abc", "invalid digest"),
    ],
)
def test_bad_tag_is_refused_before_the_build(
    ocb: Ocibuild, context: Path, name: str, why: str
) -> None:
    marker = context / "ran"
    (context / "Dockerfile").write_text(f"FROM scratch\nRUN touch {marker}\n")
    r = ocb.build(context, "-t", name, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: -t {name}: ")
    assert why in r.stderr
    assert "[1/" not in r.stderr  # no step started
    assert "Traceback" not in r.stderr
    assert name not in ocb("images").stdout


def test_setup_mistakes_are_clear_errors(ocb: Ocibuild, context: Path, tmp_path: Path) -> None:
    (context / "Dockerfile").write_text("FROM scratch\n")
    r = ocb.build(tmp_path / "missing", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: build context {tmp_path / 'missing'}: directory does not")
    r = ocb.build(context / "Dockerfile", check=False)
    assert "is a file, not a directory" in r.stderr
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(ro)], check=True)
    try:
        r = ocb.build(context, "--root", str(ro / "store"), check=False)
        assert r.returncode == 1
        assert "store directory" in r.stderr and "is not writable" in r.stderr
        r = ocb.build(context, "-o", f"type=oci,dest={ro}/layout", check=False)
        assert r.returncode == 1 and "output destination" in r.stderr
    finally:
        subprocess.run(["umount", str(ro)], check=True)
    for result in (r,):
        assert "[Errno" not in result.stderr and "Traceback" not in result.stderr


def test_closed_pipe_ends_quietly(ocb: Ocibuild, base_image: str) -> None:
    """`ocibuild run IMG seq 1 200000 | head -1`: far more than a pipe holds; head leaves."""
    cmd = f"{sys.executable} -m ocibuild run {base_image} seq 1 200000 | head -1"
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd],
        capture_output=True,
        text=True,
        env={**os.environ, "OCIBUILD_ROOT": str(ocb.root)},
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout == "1\n"
    assert proc.stderr == ""  # no BrokenPipeError, no traceback
    assert proc.returncode == 141  # what a process killed by SIGPIPE reports


def test_os_errors_read_without_errno(ocb: Ocibuild, context: Path, tmp_path: Path) -> None:
    (context / "Dockerfile").write_text("FROM scratch\nLABEL a=b\n")
    taken = tmp_path / "iid-is-a-directory"
    taken.mkdir()
    r = ocb.build(context, "--iidfile", str(taken), check=False)
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1].startswith("error: Is a directory: ")
    assert "[Errno" not in r.stderr and "Traceback" not in r.stderr
