"""runtime/runner.py: command line and failure reporting (runc replaced by scripts)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ocibuild.errors import RuntimeFailure
from ocibuild.runtime.runner import Runner


def fake_runtime(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-runc"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_command_line(tmp_path: Path) -> None:
    r = Runner(state_root="/run/ocibuild/runc")
    assert r.command("/b", "step-1") == [
        "runc", "--root", "/run/ocibuild/runc", "--log", "/b/runtime-log.json",
        "--log-format", "json", "run", "--bundle", "/b", "step-1",
    ]  # fmt: skip


def test_output_and_status(tmp_path: Path) -> None:
    rt = fake_runtime(tmp_path, "echo out; echo err >&2; exit 7\n")
    chunks: list[bytes] = []
    rc = Runner(rt, state_root=str(tmp_path / "s")).run(
        str(tmp_path), "c1", on_output=chunks.append
    )
    assert rc == 7
    assert b"".join(chunks) == b"out\nerr\n"


def test_killed_runtime_maps_to_128_plus_signal(tmp_path: Path) -> None:
    rt = fake_runtime(tmp_path, "kill -TERM $$\n")
    assert (
        Runner(rt, state_root=str(tmp_path / "s")).run(str(tmp_path), "c", on_output=print) == 143
    )


def test_runtime_log_errors_raise(tmp_path: Path) -> None:
    rt = fake_runtime(
        tmp_path,
        'while [ "$1" != --log ]; do shift; done\n'
        'echo \'{"level":"error","msg":"runc run failed: exec: \\"x\\": not found"}\' > "$2"\n'
        "exit 1\n",
    )
    with pytest.raises(RuntimeFailure) as info:
        Runner(rt, state_root=str(tmp_path / "s")).run(str(tmp_path), "c", on_output=print)
    assert 'runc run failed: exec: "x": not found' in info.value.message
    assert "--bundle" in (info.value.hint or "")


def test_missing_runtime(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="not found"):
        Runner("/nonexistent/runc", state_root=str(tmp_path)).run(
            str(tmp_path), "c", on_output=print
        )


def test_bad_container_id(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="invalid container id"):
        Runner(state_root=str(tmp_path)).run(str(tmp_path), "a/b", on_output=print)


def test_callback_error_kills_and_deletes(tmp_path: Path) -> None:
    calls, pidfile = tmp_path / "calls", tmp_path / "pid"
    rt = fake_runtime(
        tmp_path,
        f'case " $* " in *" run "*) echo $$ > {pidfile}; echo go; exec sleep 30;; esac\n'
        f'echo "$*" >> {calls}\n'
        f'case " $* " in *" kill "*) kill -KILL "$(cat {pidfile})";; esac\n',
    )

    def boom(_: bytes) -> None:
        raise ValueError("consumer failed")

    with pytest.raises(ValueError, match="consumer failed"):
        Runner(rt, state_root=str(tmp_path / "s")).run(str(tmp_path), "c9", on_output=boom)
    lines = calls.read_text().splitlines()
    assert lines[0].endswith("kill c9 KILL")
    assert lines[1].endswith("delete --force c9")
    assert os.path.isdir(tmp_path / "s")
