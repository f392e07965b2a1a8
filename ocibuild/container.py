"""``ocibuild run``: an image's command through the same runtime driver as RUN."""

from __future__ import annotations

import contextlib
import os
import termios
import tty as ttymode
from collections.abc import Callable, Sequence
from typing import Any, Literal

from ocibuild import isolation
from ocibuild.builder.scratch import Scratch
from ocibuild.errors import OcibuildError, RuntimeFailure
from ocibuild.image.model import ImageConfig
from ocibuild.image.store import Store
from ocibuild.observe.log import Reporter, SilentReporter
from ocibuild.options import Options
from ocibuild.runtime.native import NAME as NATIVE
from ocibuild.runtime.process import Process, run_process
from ocibuild.storage import driver
from ocibuild.storage.overlay import ensure_mount_namespace


def image_command(
    image: ImageConfig, override: Sequence[str], entrypoint: str | None = None
) -> list[str]:
    """ENTRYPOINT + CMD as docker run makes them: a command replaces CMD;
    ``--entrypoint`` replaces ENTRYPOINT and drops the image's CMD (``""``: none)."""
    cfg = image.config
    if entrypoint is not None:
        args = ([entrypoint] if entrypoint else []) + list(override)
    else:
        cmd = list(override) if override else list(cfg.get("Cmd") or [])
        args = list(cfg.get("Entrypoint") or []) + cmd
    if not args:
        raise OcibuildError(
            "the image has no command to run", hint="give one: ocibuild run IMAGE CMD..."
        )
    return args


def parse_volume(text: str) -> dict[str, Any]:
    """``-v HOST:CONTAINER[:ro|rw]``: a bind mount of an existing host path."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise OcibuildError(
            f"invalid -v {text!r}", hint="write it as /host/path:/container/path[:ro]"
        )
    host, dest = os.path.abspath(parts[0]), parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise OcibuildError(f"invalid -v {text!r}: mode {mode!r}", hint="use ro or rw")
    if not dest.startswith("/"):
        raise OcibuildError(f"-v {text}: the container path must be absolute")
    if not os.path.exists(host):
        raise OcibuildError(f"-v {text}: {host} does not exist")
    return {"destination": dest, "type": "bind", "source": host, "options": ["rbind", mode]}


class RuntimeLineFilter:
    """Forwards a container's output, holding back the lines the OCI runtime itself
    writes when it cannot start the process (``runc run failed: ...``): they become the
    one error message instead of being printed twice."""

    # runc's prefix; crun's, and crun 1.8's exec failure, printed without a prefix
    MARKERS = (b"runc run failed: ", b"crun: ", b"executable file `")

    def __init__(self, emit: Callable[[bytes], None]) -> None:
        self.emit = emit
        self.pending = b""  # the start of a line that may be a runtime's
        self.at_line_start = True
        self.held: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        data, self.pending = self.pending + data, b""
        out = bytearray()
        while data:
            nl = data.find(b"\n")
            line, data = (data, b"") if nl < 0 else (data[: nl + 1], data[nl + 1 :])
            if self.at_line_start and any(
                line.startswith(m) or (nl < 0 and m.startswith(line)) for m in self.MARKERS
            ):
                if nl < 0 and not any(line.startswith(m) for m in self.MARKERS):
                    self.pending = line  # too short to tell yet
                    break
                self.held.append(line)
            else:
                out += line
            self.at_line_start = nl >= 0 or (self.at_line_start and not line)
        if out:
            self.emit(bytes(out))

    def release(self) -> None:
        """The process ran after all: what was held back is its output."""
        rest = b"".join(self.held) + self.pending
        self.held, self.pending = [], b""
        if rest:
            self.emit(rest)


def start_failure_status(exc: RuntimeFailure) -> int:
    """docker run's statuses: 127 no such command, 126 not executable; else 125."""
    text = exc.message.lower()
    if "exec" not in text:  # the sandbox failed before it came to the command
        return 125
    if "permission denied" in text or "exec format error" in text:
        return 126
    if "not found" in text or "no such file or directory" in text:
        return 127
    return 125


def run_image(
    name: str,
    command: Sequence[str] = (),
    *,
    options: Options,
    on_output: Callable[[bytes], None],
    reporter: Reporter | None = None,
    user: str | None = None,
    env: Sequence[str] = (),
    entrypoint: str | None = None,
    workdir: str | None = None,
    volumes: Sequence[str] = (),
    network: str = "host",
    stdin: int | None = None,
    tty: bool = False,
) -> int:
    """Run the image's entrypoint+cmd (or ``command``); returns the exit status.

    The container's changes go to a scratch upper dir that is removed afterwards.
    ``stdin`` is a descriptor the process reads (else /dev/null); ``volumes`` are
    ``HOST:CONTAINER[:ro]``; ``network`` is ``host`` or ``none``. ``tty``: the process
    gets a terminal (the OCI runtime's: it relays ``stdin`` and the output through it, and
    puts a terminal ``stdin`` in raw mode while the process runs). A command that cannot
    be started raises :class:`RunFailure` with docker's status (127 or 126).
    """
    if network not in ("host", "none"):
        raise OcibuildError(f"unsupported --network {network!r}", hint="use host or none")
    net: Literal["host", "none"] = "none" if network == "none" else "host"
    mounts = [parse_volume(v) for v in volumes]
    store = Store(options.root)
    image = store.get_image(store.resolve(name))
    cfg = image.config
    args = image_command(image, command, entrypoint)
    lowers = store.lower_dirs(image.diff_ids)
    ensure_mount_namespace()
    reporter = reporter or SilentReporter()
    options = isolation.resolve(options, reporter, store.tmp)
    if tty and options.runtime == NATIVE:
        raise OcibuildError(
            "-t (a terminal) needs an OCI runtime; the native-chroot sandbox has none",
            hint="use --runtime runc or crun, or leave -t out",
        )
    scratch = Scratch(store, "run-")
    work = scratch.path
    output = RuntimeLineFilter(on_output)
    quiet_tty: tuple[int, int] | None = None
    if tty and stdin is None:  # -t without -i: a terminal that types nothing
        quiet_tty = _idle_terminal()
        stdin = quiet_tty[1]
    saved = _raw(stdin) if tty else None  # -it on a terminal: keys go through as typed
    try:
        mount = driver.prepare(options.storage_driver, lowers, work)
        with mount:
            try:
                status, _ = run_process(
                    rootfs=mount.target,
                    upper=mount.upper,
                    work=work,
                    process=Process(
                        args=args,
                        env=[*(cfg.get("Env") or []), *env],
                        user=user if user is not None else str(cfg.get("User") or ""),
                        workdir=workdir or str(cfg.get("WorkingDir") or "/"),
                        network=net,
                        mounts=mounts,
                        terminal=tty,
                    ),
                    runtime=options.runtime,
                    reporter=reporter,
                    on_output=output,
                    stdin=stdin,
                )
            except RuntimeFailure as exc:
                raise RunFailure(exc, start_failure_status(exc)) from None
            output.release()
        return status
    finally:
        scratch.close()
        if saved is not None and stdin is not None:
            with contextlib.suppress(OSError):
                termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        for fd in quiet_tty or ():
            os.close(fd)


def _raw(fd: int | None) -> list[Any] | None:
    """Put the terminal ``fd`` in raw mode (as docker run -it does: the container's
    terminal does the echo, line editing and Ctrl-C); its settings before, to restore."""
    if fd is None or not os.isatty(fd):
        return None
    try:
        saved = termios.tcgetattr(fd)
        ttymode.setraw(fd, termios.TCSADRAIN)
    except (OSError, termios.error):
        return None
    return saved


def _idle_terminal() -> tuple[int, int]:
    """A new pty pair (master, slave) the size of this terminal: the runtime wants a
    terminal on its standard input to size the process's one from."""
    from ocibuild.runtime.console import copy_size

    master, slave = os.openpty()
    copy_size((1, 2, 0), slave)
    return master, slave


class RunFailure(OcibuildError):
    """The command could not be started (no such file, not executable...)."""

    def __init__(self, cause: RuntimeFailure, status: int) -> None:
        reason = cause.message.splitlines()[0]
        for marker in ("unable to start container process: ", "crun: "):
            if marker in reason:
                reason = reason.split(marker, 1)[1]
        super().__init__(f"cannot run the command: {reason}")
        self.exit_code = status
