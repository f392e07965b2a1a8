"""SIGTERM/SIGINT during a spawn with preexec_fn: raised after it, never dropped.

Each case runs in a fresh interpreter (signal handlers are per process). The signal is
sent from an at-fork hook, the place where Python 3.11 prints "Exception ignored" and
drops an exception a handler raises (what made ``ocibuild build`` ignore a SIGTERM that
came while the RUN step's runtime was being started).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = """
import os, signal, subprocess, sys
from ocibuild import interrupts
from ocibuild.errors import Interrupted

SIG = signal.{sig}
interrupts.install()
os.register_at_fork(after_in_parent=lambda: os.kill(os.getpid(), SIG))
proc = None
try:
    {wrap}
        proc = subprocess.Popen(["true"], preexec_fn=lambda: None)
    for _ in range(10000):  # a signal left pending would fire in here
        pass
    print("not interrupted")
except Interrupted as exc:
    print("interrupted", exc.exit_code, "spawned" if proc else "not spawned")
except KeyboardInterrupt:
    print("keyboard interrupt", "spawned" if proc else "not spawned")
if proc:
    proc.wait()
"""


def run(sig: str, wrap: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(SCRIPT).format(sig=sig, wrap=wrap)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("sig", "expected"),
    [("SIGTERM", "interrupted 143 spawned"), ("SIGINT", "keyboard interrupt spawned")],
)
def test_signal_in_at_fork_hook_is_raised_after_the_spawn(sig: str, expected: str) -> None:
    done = run(sig, "with interrupts.deferred():")
    assert done.stdout.strip() == expected, done.stderr
    assert "Exception ignored" not in done.stderr


def test_without_deferral_the_hook_drops_the_signal() -> None:
    """What the deferral prevents (the test would pass vacuously if Python changed)."""
    done = run("SIGTERM", "if True:")
    assert done.stdout.strip() == "not interrupted"
    assert "Exception ignored" in done.stderr
