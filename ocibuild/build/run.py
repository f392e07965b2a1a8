"""RUN: the step's command in an OCI runtime over an overlay of the image's layers."""

from __future__ import annotations

import shlex

from ocibuild.build.metadata import command_args
from ocibuild.build.rootfs import commit_upper, mounted, workspace
from ocibuild.build.step import StepContext, StepOutcome, fail
from ocibuild.dockerfile.instructions import Instruction, Run
from ocibuild.errors import OcibuildError, RunError
from ocibuild.runtime.process import Process, run_process

def run_step(ctx: StepContext, instr: Instruction) -> StepOutcome:
    assert isinstance(instr, Run)
    for flag in instr.flags:
        raise fail(instr, f"the --{flag.name} flag of RUN is not supported yet")
    if instr.heredocs:
        raise fail(instr, "heredocs in RUN are not supported yet")
    args = command_args(ctx, instr.command)
    process = Process(
        args=args,
        env=ctx.stage.run_env(),
        user=ctx.image.user,
        workdir=ctx.image.workdir,
    )
    with workspace(ctx, "run-") as work:
        with mounted(ctx, ctx.image.diff_ids, work) as mnt:
            try:
                status, command = run_process(
                    rootfs=mnt.target,
                    upper=mnt.upper,
                    work=work,
                    process=process,
                    runtime=ctx.options.runtime,
                    reporter=ctx.reporter,
                    on_output=ctx.reporter.output,
                )
            except OcibuildError as exc:
                raise fail(instr, exc.message, hint=exc.hint) from None
        if status != 0:
            shown = shlex.join(args) if instr.command.exec_form else " ".join(args)
            raise RunError(
                f'process "{shown}" did not complete successfully: exit code: {status}',
                exit_status=status,
                command=command,
                pos=instr.pos,
                source=instr.original,
                instruction="RUN",
                hint="runtime command: " + shlex.join(command),
            )
        return commit_upper(ctx, mnt.upper)
