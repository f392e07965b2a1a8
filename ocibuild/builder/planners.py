"""The pure part of every step: ``plan_step(view, instr) -> StepPlan``, one case per
instruction class (the builder's explicit table). Imported on a cache miss only: a fully
cached build plans nothing.

RUN and COPY/ADD load the runtime, overlay and layer machinery (and urllib for ADD
URLs) when their effect is performed. Their plans are one effect each: the builder
module does the work.
"""

from __future__ import annotations

from ocibuild.builder.metadata import (
    command_args,
    plan_cmd,
    plan_entrypoint,
    plan_env,
    plan_expose,
    plan_healthcheck,
    plan_label,
    plan_maintainer,
    plan_onbuild,
    plan_shell,
    plan_stopsignal,
    plan_user,
    plan_volume,
)
from ocibuild.builder.step import StepContext, StepOutcome, fail
from ocibuild.builder.stepplan import HandlerEffect, StepPlan, StepView
from ocibuild.dockerfile.instructions import (
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from ocibuild.plan import PROXY_ARGS


def plan_run(view: StepView, instr: Run) -> StepPlan:
    args = " ".join(command_args(view.shell, instr.command))
    mounts = f", {len(instr.mounts)} --mount" if instr.mounts else ""
    text = f"run {args!r} in a container over the image's layers{mounts}; commit the changes"
    # BuildKit's history: the ARGs declared in this stage, in order, each with its value
    # in the build environment ("" when it has none)
    env = view.env
    scoped = [f"{k}={env.get(k, '')}" for k in view.stage.declared if k not in PROXY_ARGS]
    prefix = f"|{len(scoped)} {' '.join(scoped)} " if scoped else ""

    def perform(ctx: StepContext) -> StepOutcome:
        from ocibuild.builder.run import run_step

        return run_step(ctx, instr)

    return StepPlan(
        effects=(HandlerEffect(text, perform),), layer_history=f"RUN {prefix}{args} # buildkit"
    )


def plan_copy(view: StepView, instr: Copy) -> StepPlan:
    origin = f"stage or image {instr.from_!r}" if instr.from_ is not None else "the context"
    sources = " ".join(instr.sources)
    text = f"{instr.keyword.lower()} {sources} from {origin} to {instr.dest}; commit the changes"

    def perform(ctx: StepContext) -> StepOutcome:
        from ocibuild.builder.copy import copy_step

        return copy_step(ctx, instr)

    history = instr.original.strip() + " # buildkit"
    return StepPlan(effects=(HandlerEffect(text, perform),), layer_history=history)


def plan_workdir(view: StepView, instr: Workdir) -> StepPlan:
    from ocibuild.builder.workdir import plan_workdir as planner

    return planner(view, instr)


def plan_arg(view: StepView, instr: Arg) -> StepPlan:
    """ARG: a value (--build-arg, else the default, else the global ARG's) goes into the
    stage's environment; the history shows the ARG as written, its default expanded
    (BuildKit's ``ARG name[=default]``, not the --build-arg value). All defaults of one
    ARG are expanded first, as BuildKit does: ``ARG A=1 B=$A`` does not see this A."""
    parts = []
    values: dict[str, str] = {}
    for name, expanded in instr.args:  # defaults expanded before dispatch, together
        glob = view.plan.global_args.get(name)
        if name in view.build_args:
            value: str | None = view.build_args[name]
        elif expanded is not None:
            value = expanded
        elif glob is not None:
            value = glob
        else:
            value = view.plan.platform_args.get(name)
        if value is not None:
            values[name] = value
        parts.append(name if expanded is None else f"{name}={expanded}")
    return StepPlan(
        history="ARG " + " ".join(parts),
        args=values,
        consumed=tuple(name for name, _ in instr.args),
    )


def plan_step(view: StepView, instr: Instruction) -> StepPlan:
    """The pure part of a step, chosen by the instruction's type (the parser made one
    class per instruction; COPY and ADD share ``Copy``): the builder's explicit table."""
    match instr:
        case Run():
            return plan_run(view, instr)
        case Copy():
            return plan_copy(view, instr)
        case Workdir():
            return plan_workdir(view, instr)
        case Arg():
            return plan_arg(view, instr)
        case Env():
            return plan_env(view, instr)
        case Label():
            return plan_label(view, instr)
        case User():
            return plan_user(view, instr)
        case Cmd():
            return plan_cmd(view, instr)
        case Entrypoint():
            return plan_entrypoint(view, instr)
        case Expose():
            return plan_expose(view, instr)
        case Volume():
            return plan_volume(view, instr)
        case StopSignal():
            return plan_stopsignal(view, instr)
        case Shell():
            return plan_shell(view, instr)
        case Maintainer():
            return plan_maintainer(view, instr)
        case Healthcheck():
            return plan_healthcheck(view, instr)
        case Onbuild():
            return plan_onbuild(view, instr)
    raise fail(instr, f"{instr.keyword} is not supported here")
