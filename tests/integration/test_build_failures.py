"""Failing steps, bad input and interrupts: clear errors, nothing left behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Ocibuild, mountinfo_mentions


def test_failing_run(ocb: Ocibuild, base_image: str, context: Path) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo before\nRUN echo some output; exit 3\n"
    )
    res = ocb.build(context, "-t", "t-fail", check=False)
    assert res.returncode == 1
    assert "some output" in res.stderr
    assert "Dockerfile:3: RUN: " in res.stderr
    assert (
        'process "/bin/sh -c echo some output; exit 3" did not complete successfully: exit code: 3'
        in res.stderr
    )
    # the runtime's bundle is deleted by now: how to keep it, not its stale path
    assert "hint: rerun with --keep-failed" in res.stderr and " run --bundle " not in res.stderr
    assert "Traceback" not in res.stderr
    assert ocb("inspect", "t-fail", check=False).returncode == 1, "nothing tagged"
    assert mountinfo_mentions(str(ocb.root)) == []
    assert [n for n in os.listdir(ocb.root / "tmp") if n.startswith("build-")] == []


def test_unknown_instruction_is_a_clear_error(ocb: Ocibuild, context: Path) -> None:
    (context / "Dockerfile").write_text("FROM scratch\nFROB x\n")
    res = ocb.build(context, check=False)
    assert res.returncode == 1
    assert "Dockerfile:2" in res.stderr and "FROB" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_source_is_a_clear_error(ocb: Ocibuild, base_image: str, context: Path) -> None:
    (context / "Dockerfile").write_text(f"FROM {base_image}\nCOPY nothere /x\n")
    res = ocb.build(context, check=False)
    assert res.returncode == 1
    assert "Dockerfile:2: COPY: source 'nothere' not found in the build context" in res.stderr


def test_missing_base_image(ocb: Ocibuild, context: Path) -> None:
    (context / "Dockerfile").write_text("FROM no-such-image:1\n")
    res = ocb.build(context, check=False)
    assert res.returncode == 1
    assert "Dockerfile:1: FROM:" in res.stderr and "no-such-image" in res.stderr


def processes_with_env(token: str) -> list[int]:
    """PIDs whose environment holds ``token``: this test's own container processes only."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if token.encode() in f.read():
                        found.append(int(name))
            except OSError:
                continue  # gone, or a kernel thread
    return found


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


def test_ctrl_c_during_run(ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    token = f"ocb-ctrl-c-{os.getpid()}-{time.monotonic_ns()}"
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nENV OCB_TEST_TOKEN={token}\nRUN echo started && sleep 60\n"
    )
    env = {**os.environ, "OCIBUILD_ROOT": str(ocb.root)}
    with open(marker, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ocibuild", "build", str(context)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while b"started" not in marker.read_bytes():
        assert time.monotonic() < deadline, marker.read_text()
        assert proc.poll() is None, marker.read_text()
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
    assert proc.wait(timeout=30) == 130
    assert "Traceback" not in marker.read_text()
    assert mountinfo_mentions(str(ocb.root)) == []
    assert processes_with_env(token) == [], "the container's process was killed"
    # the store is still usable
    (context / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo ok\n")
    assert "ok" in ocb.build(context).stderr
    assert [n for n in os.listdir(ocb.root / "tmp") if n.startswith("build-")] == []


def unique_sleep() -> str:
    """A sleep command no other process on the machine runs (the tests look for it by
    its command line, and other test runs may sleep too)."""
    return f"sleep {random.randrange(60000, 99999)}"


def test_sigterm_during_run(ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path) -> None:
    marker = tmp_path / "log"
    sleep = unique_sleep()
    (context / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo started && {sleep}\n")
    with open(marker, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ocibuild", "build", str(context)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "OCIBUILD_ROOT": str(ocb.root)},
        )
    deadline = time.monotonic() + 60
    while b"started" not in marker.read_bytes():
        assert time.monotonic() < deadline and proc.poll() is None, marker.read_text()
        time.sleep(0.05)
    proc.terminate()
    assert proc.wait(timeout=30) == 143
    assert mountinfo_mentions(str(ocb.root)) == []
    assert subprocess.run(["pgrep", "-f", sleep], capture_output=True).stdout == b""


def test_sigterm_during_parallel_stages(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    """Independent stages run in threads; SIGTERM kills their RUN steps at once (the
    build does not wait for their commands to end)."""
    marker = tmp_path / "log"
    sleep = unique_sleep()
    (context / "Dockerfile").write_text(
        f"FROM {base_image} AS a\nRUN echo started-a && {sleep}\n"
        f"FROM {base_image} AS b\nRUN echo started-b && {sleep}\n"
        f"FROM {base_image}\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n"
    )
    with open(marker, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ocibuild", "build", str(context)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "OCIBUILD_ROOT": str(ocb.root)},
        )
    deadline = time.monotonic() + 60
    sleeping = ["pgrep", "-f", sleep]  # stage output shows only when a step ends
    while len(subprocess.run(sleeping, capture_output=True).stdout.split()) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, marker.read_text()
        time.sleep(0.05)
    started = time.monotonic()
    proc.terminate()
    assert proc.wait(timeout=30) == 143
    assert time.monotonic() - started < 15, "the build waited for the stages' RUN steps"
    assert mountinfo_mentions(str(ocb.root)) == []
    assert subprocess.run(sleeping, capture_output=True).stdout == b""
