"""RUN: the step's command in an OCI runtime over an overlay of the image's layers.

Handles heredocs (a body run by the shell, a ``#!`` script run from ``/dev/pipes``, or
bodies handed to the shell after the command line), ``--mount`` (see ``mounts``),
``--network=default|none|host`` and ``--security=sandbox``.

Network: ``default`` (the build's ``--network``, itself ``default`` unless given) joins the
build's own network namespace (:mod:`ocibuild.runtime.network`); ``none`` gets an empty
one; ``host`` shares the host's network, with a warning saying what that exposes.
"""

from __future__ import annotations

import os
import shlex
import signal
from contextlib import ExitStack
from typing import Any

from ocibuild.builder.heredoc import run_script
from ocibuild.builder.metadata import command_args
from ocibuild.builder.mounts import mount_specs, prepare_mounts
from ocibuild.builder.rootfs import commit_upper, mounted, workspace
from ocibuild.builder.step import StepContext, StepOutcome, fail
from ocibuild.dockerfile.instructions import Command, Run
from ocibuild.errors import Interrupted, OcibuildError, RunError
from ocibuild.observe import forensics
from ocibuild.plan import PROXY_ARGS
from ocibuild.runtime.etcfiles import Network
from ocibuild.runtime.network import HOST_WARNING
from ocibuild.runtime.process import Process, run_process

NETWORKS: dict[str, Network] = {"default": "private", "host": "host", "none": "none"}


def network_mode(ctx: StepContext, instr: Run) -> Network:
    """The step's network: RUN --network, else the build's --network."""
    value = "default" if instr.network is None else instr.network
    if value not in NETWORKS:
        raise fail(
            instr,
            f"unsupported network mode {value!r}",
            hint="RUN --network takes default, none or host",
        )
    if value == "default":
        value = ctx.options.network
    return NETWORKS.get(value, "private")


def network_namespace(ctx: StepContext, instr: Run, network: Network) -> str | None:
    """The build's network namespace for a ``private`` step (made on first use)."""
    if network == "host":
        if ctx.network is None or ctx.network.warn_host():
            ctx.reporter.info(HOST_WARNING)
        return None
    if network != "private":
        return None
    if ctx.network is None:  # a context made without one (API callers, tests)
        raise fail(instr, "this build has no private network", hint="use RUN --network=host")
    try:
        return ctx.network.netns()
    except OcibuildError as exc:
        raise fail(instr, exc.message, hint=exc.hint) from None
    except OSError as exc:
        raise fail(
            instr,
            f"cannot make the build's network namespace: {exc.strerror or exc}",
            hint="build with --network=host (the steps then share the host's network)",
        ) from None


def check_security(ctx: StepContext, instr: Run) -> None:
    if instr.security is None:
        return
    value = instr.security
    if value == "insecure":
        raise fail(
            instr,
            "RUN --security=insecure is not allowed",
            hint="ocibuild does not grant the security.insecure entitlement",
        )
    if value != "sandbox":
        raise fail(instr, f"unsupported security mode {value!r}", hint="use sandbox or insecure")


def run_env(ctx: StepContext) -> list[str]:
    """The RUN environment: config Env, ARGs in scope, and proxy --build-args (which
    need no ARG declaration)."""
    env = ctx.stage.run_env()
    names = {item.partition("=")[0] for item in env}
    for name in sorted(PROXY_ARGS):
        if name in ctx.build_args and name not in names:
            env.append(f"{name}={ctx.build_args[name]}")
            ctx.consumed_args.add(name)
    return env


def run_step(ctx: StepContext, instr: Run) -> StepOutcome:
    network = network_mode(ctx, instr)
    check_security(ctx, instr)
    specs = mount_specs(ctx, instr)
    script = run_script(instr.command, instr.heredocs)
    args = command_args(ctx.image.shell, Command(script.args, instr.command.exec_form))
    env = run_env(ctx)
    with ExitStack() as stack:
        extra: list[dict[str, Any]] = []
        if script.script is not None:
            pipes = stack.enter_context(workspace(ctx, "pipes-"))
            path = os.path.join(pipes, script.script.name)
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(script.script.content)
            os.chmod(path, 0o755)
            os.chmod(pipes, 0o755)
            extra.append(
                {"destination": "/dev/pipes", "type": "bind", "source": pipes,
                 "options": ["rbind", "ro"]}
            )  # fmt: skip
        prepared = stack.enter_context(prepare_mounts(ctx, instr, specs))
        extra.extend(prepared.mounts)
        env += [f"{k}={v}" for k, v in prepared.env.items()]
        process = Process(
            args=args,
            env=env,
            user=ctx.image.user,
            workdir=ctx.image.workdir,
            network=network,
            mounts=tuple(extra),
            netns=network_namespace(ctx, instr, network),
        )
        work = stack.enter_context(workspace(ctx, "run-"))
        with mounted(ctx, ctx.image.diff_ids, work) as mnt:
            try:
                from ocibuild.runtime.process import HostSettings  # (kept apart for merges)

                status, command = run_process(
                    rootfs=mnt.target,
                    upper=mnt.upper,
                    work=work,
                    process=process,
                    runtime=ctx.options.runtime,
                    reporter=ctx.reporter,
                    on_output=ctx.output,
                    cancel=ctx.cancelled,  # another platform's build failed: stop now
                    host=HostSettings(
                        ctx.options.add_hosts, ctx.options.ulimits, ctx.options.shm_size
                    ),
                )
            except OcibuildError as exc:
                kept = forensics.after_run(ctx, mnt, work, [], None)  # --keep-failed
                hint = "\n".join(h for h in (exc.hint, kept) if h) or None
                raise fail(instr, exc.message, hint=hint) from None
            if status != 0 and ctx.cancelled.is_set():  # killed: the build was cancelled
                raise Interrupted(signal.SIGINT)
            kept = forensics.after_run(ctx, mnt, work, command, status)  # --keep-bundles/failed
            if status != 0:
                shown = shlex.join(args) if instr.command.exec_form else " ".join(args)
                raise RunError(
                    f'process "{shown}" did not complete successfully: exit code: {status}',
                    exit_status=status,
                    command=command,
                    pos=instr.pos,
                    source=instr.original,
                    instruction="RUN",
                    hint="runtime command: " + shlex.join(command) + (f"\n{kept}" if kept else ""),
                )
        return commit_upper(ctx, mnt.upper)
    raise AssertionError("unreachable")
