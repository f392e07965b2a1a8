"""Run one process in a mounted rootfs through the OCI runtime or the native sandbox.

Shared by RUN steps and ``ocibuild run``: resolves the user in the image, creates the
working dir, writes the bundle (config.json + generated /etc files), runs it, and
removes the mount-point stubs left in the upper dir.

The sandbox: ``runtime`` names an OCI runtime (runc, crun, a path), or is
``native-chroot`` for ocibuild's own sandbox (:mod:`ocibuild.runtime.native`). Inside the
build's user namespace (rootless), the spec is the rootless variant and every id the
process runs as must be mapped. Every sandbox gets Docker's default seccomp profile
(:mod:`ocibuild.runtime.seccomp`) for the process's bounding capabilities.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shlex
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ocibuild._record import dataclass
from ocibuild.errors import RuntimeFailure
from ocibuild.fs.idmap import check_mapped, in_user_namespace, read_id_maps
from ocibuild.observe.log import Reporter
from ocibuild.runtime import native
from ocibuild.runtime.bundle import write_bundle, write_etc_files
from ocibuild.runtime.etcfiles import Network
from ocibuild.runtime.runner import is_crun, make_runner
from ocibuild.runtime.seccomp import compile_bpf_cached, spec_seccomp
from ocibuild.runtime.spec import (
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    container_mount_destinations,
    env_list_to_map,
    make_spec,
    rootless_variant,
    with_nodev_rootfs_hook,
    with_seccomp_program,
)
from ocibuild.runtime.stubs import (
    check_kernel_dirs,
    existing_parents,
    find_missing,
    make_kernel_dirs,
    remove_copied_up_parents,
    remove_stubs,
    restore_dir_times,
)
from ocibuild.runtime.users import resolve_user
from ocibuild.storage import fsops

_TAIL = 65536  # bytes of a failing runtime's output kept for its error message
HOSTNAME = "buildkitsandbox"  # what BuildKit calls a build container


class ProcessRunner(Protocol):
    def describe(self) -> str: ...
    def command(self, bundle: str, container_id: str) -> list[str]: ...
    def run(self, bundle: str, container_id: str, *, on_output: Callable[[bytes], None]) -> int: ...


def make_process_runner(runtime: str, state_root: str) -> ProcessRunner:
    """The sandbox for ``runtime``: an OCI runtime, or ``native-chroot``."""
    if runtime == native.NAME:
        return native.NativeRunner()
    return make_runner(runtime, state_root=state_root)


@dataclass(frozen=True)
class Process:
    """What to run and as whom; resolved against the rootfs at run time."""

    args: Sequence[str]
    env: Sequence[str]
    user: str
    workdir: str
    network: Network = "host"  # host | none (empty namespace) | private (join ``netns``)
    mounts: Sequence[Mapping[str, Any]] = ()  # extra runtime-spec mounts (RUN --mount)
    netns: str | None = None  # the build's network namespace (network="private")
    terminal: bool = False  # `ocibuild run -t`: the OCI runtime gives the process a pty


_SYSTEM_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"


def _host_binary(name: str, package: str) -> str:
    path = shutil.which(name, path=_SYSTEM_PATH)
    if path is None:
        raise RuntimeFailure(
            f"{name} is not installed: crun needs it to keep the rootfs nodev",
            hint=f"apt-get install -y {package}, or use --runtime runc",
        )
    return path


@functools.cache
def _busybox() -> str | None:
    """The host's busybox (Debian's busybox-static, which make setup installs), or None."""
    return shutil.which("busybox", path=_SYSTEM_PATH)


def _crun_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` for crun: the nodev hook, and the seccomp filter compiled once per build
    (crun would compile Docker's profile again for every step: ~6 ms of CPU each)."""
    busybox = _busybox()
    if busybox:
        spec = with_nodev_rootfs_hook(spec, "", busybox=busybox)
    else:
        spec = with_nodev_rootfs_hook(
            spec, _host_binary("mount", "mount"), _host_binary("cat", "coreutils")
        )
    profile = spec.get("linux", {}).get("seccomp")
    if profile:
        program = compile_bpf_cached(json.dumps(profile, sort_keys=True))
        spec = with_seccomp_program(spec, program)
    return spec


def run_process(
    *,
    rootfs: str,
    upper: str,
    work: str,
    process: Process,
    runtime: str,
    reporter: Reporter,
    on_output: Callable[[bytes], None],
    stdin: int | None = None,
    host: HostSettings | None = None,
    cancel: threading.Event | None = None,
) -> tuple[int, list[str]]:
    """Run ``process`` in the mounted ``rootfs``; return (exit status, runtime command).

    Mount-point stubs the runtime creates (/proc, /etc/hosts, ...) are removed from
    ``upper`` afterwards unless the process itself put something there. ``stdin``: a
    descriptor the process reads (``ocibuild run``, OCI runtimes only); else /dev/null.
    ``host``: ``--add-host``, ``--ulimit`` and ``--shm-size`` (see :func:`with_host`).
    ``cancel``: once set (from another thread), the container is killed (OCI runtimes).
    """
    check_kernel_dirs(rootfs)
    made = make_kernel_dirs(rootfs)  # kept after the step, as BuildKit's layers keep them
    user = resolve_user(rootfs, process.user or "0")
    fsops.makedirs(rootfs, process.workdir)
    env = env_list_to_map(list(process.env))
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", user.home or "/")
    bundle = os.path.join(work, "bundle")
    os.mkdir(bundle, 0o700)
    network = process.network
    etc_files = write_etc_files(bundle, hostname=HOSTNAME, network=network, include_hostname=True)
    spec = make_spec(
        rootfs=rootfs,
        args=list(process.args),
        env=[f"{k}={v}" for k, v in env.items()],
        cwd=process.workdir,
        uid=user.uid,
        gid=user.gid,
        additional_gids=user.additional_gids,
        hostname=HOSTNAME,
        etc_files=etc_files,
        network=network,
        netns_path=process.netns,
        extra_mounts=process.mounts,
        seccomp=spec_seccomp(DEFAULT_CAPABILITIES),
    )
    if host is not None:  # --add-host, --ulimit, --shm-size
        spec = with_host(spec, host, bundle, network)
    if process.terminal:  # the runtime, in the foreground, relays its own stdio to it
        spec["process"]["terminal"] = True
    if in_user_namespace():
        uids, gids = read_id_maps()
        check_mapped("uid", user.uid, uids)
        for gid in (user.gid, *user.additional_gids):
            check_mapped("gid", gid, gids)
        spec = rootless_variant(spec, gids.contains)
    if is_crun(runtime):
        spec = _crun_spec(spec)
    missing = find_missing(rootfs, container_mount_destinations(spec))
    parents = existing_parents(rootfs, missing)
    in_place = os.path.realpath(upper) == os.path.realpath(rootfs)
    times = {rel: os.lstat(os.path.join(rootfs, rel)) for rel in parents} if in_place else {}
    write_bundle(bundle, spec)
    runner = make_process_runner(runtime, os.path.join(work, "state"))
    container_id = "ocibuild-" + secrets.token_hex(6)
    command = runner.command(bundle, container_id)
    reporter.debug(f"sandbox: {runner.describe()}")
    reporter.debug("exec " + shlex.join(command))
    tail = bytearray()  # what a runtime that failed to start said, shown verbatim

    def output(data: bytes) -> None:
        tail.extend(data)
        del tail[:-_TAIL]
        on_output(data)

    from ocibuild.runtime.runner import Runner  # (a separate line: merges stay simple)

    stop = _kill_on_cancel(runner, container_id, cancel) if isinstance(runner, Runner) else None
    try:
        if stdin is not None and isinstance(runner, Runner):
            status = runner.run(
                bundle, container_id, on_output=output, stdin=stdin, terminal=process.terminal
            )
        else:
            if stdin is not None:
                reporter.info(f"warning: standard input is not passed to {runner.describe()}")
            status = runner.run(bundle, container_id, on_output=output)
    finally:
        if stop is not None:
            stop()
    log_path = getattr(runner, "log_path", None)
    if status != 0 and callable(log_path) and not os.path.exists(log_path(bundle)):
        # An OCI runtime writes its --log file first thing; without one it never got to
        # starting the container, and what it printed is its own error.
        raise RuntimeFailure(
            f"the OCI runtime {runtime} exited with status {status} before starting the "
            "container; it said:\n" + tail.decode("utf-8", "replace").rstrip("\n"),
            hint="runtime command: " + shlex.join(command),
        )
    remove_stubs(upper, missing)
    if not in_place:
        # With an upper dir, parents copied up only to hold a stub go too.
        remove_copied_up_parents(upper, {k: v for k, v in parents.items() if k not in made})
    # Without one (vfs: the tree is its own "upper"), those dirs were there before: keep
    # them, with the times they had (the stubs' creation moved them), through dir fds
    # that follow no link the step put in their place.
    restore_dir_times(rootfs, times)
    return status, command


def _kill_on_cancel(
    runner: Any, container_id: str, cancel: threading.Event | None
) -> Callable[[], None] | None:
    """While the container runs, a thread that kills it once ``cancel`` is set (again
    every 0.2 s: the runtime may not have created it yet); returns what ends the watch."""
    if cancel is None:
        return None
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            if cancel.is_set():
                runner.kill(container_id)

    thread = threading.Thread(target=watch, name="cancel-" + container_id, daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join()

    return stop


@dataclass(frozen=True)
class HostSettings:
    """What ``build --add-host/--ulimit/--shm-size`` change in every RUN's sandbox."""

    add_hosts: Sequence[tuple[str, str]] = ()  # (ip, name) lines in /etc/hosts
    ulimits: Sequence[tuple[str, int, int]] = ()  # (name, soft, hard)
    shm_size: int | None = None  # bytes; the default /dev/shm is 64 MiB


def with_host(
    spec: dict[str, Any], host: HostSettings, bundle: str, network: Any
) -> dict[str, Any]:
    """``spec`` with the host settings applied: /etc/hosts rewritten with the extra lines
    (the file the spec binds), ``process.rlimits`` added, /dev/shm's size set."""
    if host.add_hosts:
        write_etc_files(
            bundle, hostname=HOSTNAME, network=network, include_hostname=True,
            extra_hosts=list(host.add_hosts),
        )  # fmt: skip
    if host.ulimits:
        spec["process"]["rlimits"] = [
            {"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard}
            for name, soft, hard in host.ulimits
        ]
    if host.shm_size:
        for mount in spec.get("mounts") or []:
            if mount.get("destination") == "/dev/shm":
                options = [o for o in mount.get("options", []) if not o.startswith("size=")]
                mount["options"] = [*options, f"size={host.shm_size // 1024}k"]
    return spec
