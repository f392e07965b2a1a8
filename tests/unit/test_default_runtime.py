"""The OCI runtime a build uses when none is asked for: crun when it is on PATH (about
8 ms a RUN step against 27 ms for runc), runc otherwise; an explicit choice wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocibuild.options import Options, default_runtime


def _path_with(tmp_path: Path, *tools: str) -> str:
    for tool in tools:
        exe = tmp_path / tool
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    return str(tmp_path)


def test_crun_on_path_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path, "crun", "runc"))
    assert default_runtime() == "crun"
    assert Options.resolve(root=str(tmp_path), env={}).runtime == "crun"


def test_runc_without_crun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path, "runc"))
    assert default_runtime() == "runc"
    assert Options.resolve(root=str(tmp_path), env={}).runtime == "runc"


def test_an_explicit_runtime_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path, "crun", "runc"))
    assert Options.resolve(root=str(tmp_path), runtime="runc", env={}).runtime == "runc"
    env = {"OCIBUILD_RUNTIME": "runc"}
    assert Options.resolve(root=str(tmp_path), env=env).runtime == "runc"
    wrapper = os.path.join("tools", "wrap.sh")
    assert Options.resolve(root=str(tmp_path), runtime=wrapper, env={}).runtime == os.path.abspath(
        wrapper
    )


def test_doctor_says_which_runtime_is_picked() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OCIBUILD_RUNTIME"}
    out = subprocess.run(
        [sys.executable, "-m", "ocibuild", "doctor"], capture_output=True, text=True, env=env
    ).stdout
    first = out.splitlines()[0]
    assert f"runtime {default_runtime()} (default: crun when on PATH, else runc)" in first
    out = subprocess.run(
        [sys.executable, "-m", "ocibuild", "doctor", "--runtime", "runc"],
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    assert "runtime runc (--runtime)" in out.splitlines()[0]
