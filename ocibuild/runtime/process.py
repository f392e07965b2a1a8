"""Run one process in a mounted rootfs through the OCI runtime.

Shared by RUN steps and ``ocibuild run``: resolves the user in the image, creates the
working dir, writes the bundle (config.json + generated /etc files), runs the runtime, and
removes the mount-point stubs the runtime left in the upper dir.
"""

from __future__ import annotations

import os
import secrets
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ocibuild.log import Reporter
from ocibuild.runtime.bundle import write_bundle, write_etc_files
from ocibuild.runtime.runner import Runner
from ocibuild.runtime.spec import container_mount_destinations, make_spec
from ocibuild.runtime.stubs import (
    existing_parents,
    find_missing,
    remove_copied_up_parents,
    remove_stubs,
)
from ocibuild.runtime.users import resolve_user
from ocibuild.storage import fsops

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOSTNAME = "buildkitsandbox"  # what BuildKit calls a build container


def env_list_to_map(env: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


@dataclass(frozen=True)
class Process:
    """What to run and as whom; resolved against the rootfs at run time."""

    args: Sequence[str]
    env: Sequence[str]
    user: str
    workdir: str
    network: str = "host"


def run_process(
    *,
    rootfs: str,
    upper: str,
    work: str,
    process: Process,
    runtime: str,
    reporter: Reporter,
    on_output: Callable[[bytes], None],
) -> tuple[int, list[str]]:
    """Run ``process`` in the mounted ``rootfs``; return (exit status, runtime command).

    Mount-point stubs the runtime creates (/proc, /etc/hosts, ...) are removed from
    ``upper`` afterwards unless the process itself put something there.
    """
    user = resolve_user(rootfs, process.user or "0")
    fsops.makedirs(rootfs, process.workdir)
    env = env_list_to_map(list(process.env))
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", user.home or "/")
    bundle = os.path.join(work, "bundle")
    os.mkdir(bundle, 0o700)
    network: Literal["host", "none"] = "none" if process.network == "none" else "host"
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
    )
    missing = find_missing(rootfs, container_mount_destinations(spec))
    parents = existing_parents(rootfs, missing)
    write_bundle(bundle, spec)
    runner = Runner(runtime, state_root=os.path.join(work, "state"))
    container_id = "ocibuild-" + secrets.token_hex(6)
    command = runner.command(bundle, container_id)
    reporter.debug("exec " + shlex.join(command))
    status = runner.run(bundle, container_id, on_output=on_output)
    remove_stubs(upper, missing)
    remove_copied_up_parents(upper, parents)
    return status, command
