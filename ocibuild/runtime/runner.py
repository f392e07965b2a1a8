"""Drive an OCI runtime (runc or crun) in the foreground for one build step.

The runtime runs in its own session (a terminal's Ctrl-C reaches only us), with stdin
/dev/null and stdout+stderr merged into one pipe streamed to ``on_output``. Its own
diagnostics go to a JSON log file (``--log``) so that a runtime failure ("exec: not
found", a bad mount...) is told apart from the step's process exiting non-zero. On
KeyboardInterrupt or any error while waiting, the container is killed and deleted
before the exception propagates.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ocibuild import interrupts
from ocibuild.errors import RuntimeFailure

if TYPE_CHECKING:
    import subprocess

LOG_NAME = "runtime-log.json"
_ID_RE = re.compile(r"^[\w+.-]+$")
_CHUNK = 65536
# Containers being run, by id: another thread can kill them (kill_running)
_running: dict[str, Runner] = {}
_running_lock = threading.Lock()


def kill_running() -> None:
    """SIGKILL every container a Runner is running now, in any thread: a SIGTERM or
    Ctrl-C must not wait for RUN steps of parallel stages to end (each one's run then
    returns 137 and its thread ends)."""
    with _running_lock:
        running = list(_running.items())
    for container_id, runner in running:
        runner.kill(container_id)


class Runner:
    """One OCI runtime binary with its state directory."""

    def __init__(
        self,
        runtime: str = "runc",
        *,
        state_root: str,
        global_args: Sequence[str] = (),
        preexec: Callable[[], None] | None = None,
        note: str = "",
    ) -> None:
        self.runtime = runtime
        self.state_root = state_root
        self.global_args = tuple(global_args)
        self.preexec = preexec
        self.note = note

    def describe(self) -> str:
        text = f"{self.runtime} (state in {self.state_root})"
        return f"{text}, {self.note}" if self.note else text

    def _base(self) -> list[str]:
        return [self.runtime, "--root", self.state_root, *self.global_args]

    def log_path(self, bundle: str) -> str:
        return os.path.join(bundle, LOG_NAME)

    def command(
        self, bundle: str, container_id: str, *, console_socket: str | None = None
    ) -> list[str]:
        """The exact command line ``run`` executes (for logs and ``--keep-failed``)."""
        console = ["--console-socket", console_socket] if console_socket else []
        return [
            *self._base(),
            "--log",
            self.log_path(bundle),
            "--log-format",
            "json",
            "run",
            *console,
            "--bundle",
            bundle,
            container_id,
        ]

    def run(
        self,
        bundle: str,
        container_id: str,
        *,
        on_output: Callable[[bytes], None],
        stdin: int | None = None,
        terminal: bool = False,
    ) -> int:
        """Run the bundle; returns the exit status (128+N when killed by signal N).
        ``stdin``: a file descriptor the process reads (``ocibuild run``); else /dev/null.
        ``terminal``: the bundle gives the process a terminal; crun then hands its master
        end over and ocibuild relays it (``runtime/console.py``), runc relays its own.

        Raises RuntimeFailure when the runtime itself could not start the container.
        """
        if not _ID_RE.match(container_id):
            raise RuntimeFailure(f"invalid container id {container_id!r}")
        os.makedirs(self.state_root, mode=0o700, exist_ok=True)
        log = self.log_path(bundle)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(log)
        console = None
        if terminal and is_crun(self.runtime):
            from ocibuild.runtime.console import ConsoleSocket

            console = ConsoleSocket()
        argv = self.command(bundle, container_id, console_socket=console.path if console else None)
        proc: subprocess.Popen[bytes] | None = None
        master: int | None = None
        try:
            # A Ctrl-C or SIGTERM during the spawn (its at-fork hooks run Python code) is
            # raised once the runtime is started, here, where the abort below sees it.
            with interrupts.deferred():
                proc = self._spawn(argv, None if console else stdin)
                with _running_lock:
                    _running[container_id] = self
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            if console is not None:
                from ocibuild.runtime.console import relay

                master = console.receive(fd, on_output)
                if master is not None:
                    relay(master, stdin, on_output)
            while chunk := os.read(fd, _CHUNK):
                on_output(chunk)
            rc = proc.wait()
        except BaseException:
            if proc is not None:
                self._abort(proc, container_id)
            raise
        finally:
            with _running_lock:
                _running.pop(container_id, None)
            if proc is not None and proc.stdout is not None:
                proc.stdout.close()
            if master is not None:
                os.close(master)
            if console is not None:
                console.close()
        self._cleanup(container_id)
        errors = _log_errors(log)
        if errors:
            raise RuntimeFailure(
                f"{self.runtime} failed to run the container: " + "; ".join(errors),
                hint="command: " + " ".join(argv),
            )
        return 128 - rc if rc < 0 else rc

    def _spawn(self, argv: list[str], stdin: int | None) -> subprocess.Popen[bytes]:
        import subprocess  # (here and below: `ocibuild doctor` and cached builds need none)

        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                close_fds=True,
                start_new_session=True,
                preexec_fn=self.preexec,
            )
        except FileNotFoundError as exc:
            raise RuntimeFailure(
                f"OCI runtime {self.runtime!r} not found",
                hint=f"install it (`apt-get install -y {os.path.basename(self.runtime)}`)",
            ) from exc

    def kill(self, container_id: str, sig: str = "KILL") -> None:
        self._quiet([*self._base(), "kill", container_id, sig])

    def delete(self, container_id: str) -> None:
        self._quiet([*self._base(), "delete", "--force", container_id])

    def _quiet(self, argv: list[str]) -> None:
        import subprocess

        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                timeout=30,
                check=False,
            )

    def _abort(self, proc: subprocess.Popen[bytes], container_id: str) -> None:
        """Kill and delete the container, then reap the runtime; never raises."""
        import subprocess

        # Shield the clean-up from a second Ctrl-C; the first one is re-raised anyway.
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        try:
            self.kill(container_id)
            self.delete(container_id)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            self.delete(container_id)
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)

    def _cleanup(self, container_id: str) -> None:
        # runc/crun remove the state themselves after a foreground run; only call
        # ``delete --force`` (one more exec) when something was left behind.
        if os.path.lexists(os.path.join(self.state_root, container_id)):
            self.delete(container_id)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _log_errors(path: str) -> list[str]:
    """Messages of error/fatal entries in the runtime's JSON log."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal", "panic"):
            out.append(str(entry.get("msg", "")).strip())
    return [m for m in out if m]


def is_crun(runtime: str) -> bool:
    return os.path.basename(runtime).startswith("crun")


def cgroup_layout(mountinfo: str = "/proc/self/mountinfo") -> str:
    """ "unified" (cgroup v2 only), "hybrid" (v1 with a v2 tree in unified/) or "legacy"."""
    types: dict[str, str] = {}
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) > 4 and right:
                    types[fields[4]] = right.split()[0]
    except OSError:
        return "unified"
    if types.get("/sys/fs/cgroup") == "cgroup2":
        return "unified"
    if types.get("/sys/fs/cgroup/unified") == "cgroup2":
        return "hybrid"
    return "legacy"


def _crun_preexec() -> None:
    from ocibuild import _native

    _native.isolate_cgroup2("/sys/fs/cgroup/unified")


def make_runner(runtime: str, *, state_root: str) -> Runner:
    """A Runner for ``runtime``; crun gets the workaround for hybrid cgroup hosts.

    crun 1.8 refuses a cgroup v1 host with a v2 tree under /sys/fs/cgroup/unified. Build
    steps need no cgroup limits, so crun runs with ``--cgroup-manager=disabled`` and, on a
    hybrid host, in a private mount namespace where the cgroup2 tree is bound over
    /sys/fs/cgroup. The host's cgroup set-up is not touched.
    """
    if not is_crun(runtime):
        return Runner(runtime, state_root=state_root)
    if cgroup_layout() == "hybrid":
        return Runner(
            runtime,
            state_root=state_root,
            global_args=("--cgroup-manager=disabled",),
            preexec=_crun_preexec,
            note="in a private mount namespace with /sys/fs/cgroup/unified bound over "
            "/sys/fs/cgroup (hybrid cgroups)",
        )
    return Runner(runtime, state_root=state_root, global_args=("--cgroup-manager=disabled",))
