"""Run a plan: stage by stage, instruction by instruction, through an explicit table."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ocibuild.build.context import SourceTree
from ocibuild.build.copy import copy_step
from ocibuild.build.metadata import (
    command_args,
    cmd_step,
    entrypoint_step,
    env_step,
    expose_step,
    healthcheck_step,
    label_step,
    maintainer_step,
    onbuild_step,
    shell_step,
    stopsignal_step,
    user_step,
    volume_step,
)
from ocibuild.build.run import run_step
from ocibuild.build.scratch import Scratch
from ocibuild.build.source import base_image
from ocibuild.build.state import ImageState, StageState
from ocibuild.build.step import StepContext, StepOutcome, fail
from ocibuild.build.workdir import workdir_step
from ocibuild.dockerfile.instructions import Arg, Copy, Instruction, Run
from ocibuild.image.store import Store
from ocibuild.log import Reporter
from ocibuild.options import Options
from ocibuild.plan import PLATFORM_ARGS, PROXY_ARGS, Plan, Stage

Handler = Callable[[StepContext, Instruction], StepOutcome]


def arg_step(ctx: StepContext, instr: Instruction) -> StepOutcome:
    assert isinstance(instr, Arg)
    parts = []
    for name, default in instr.args:
        ctx.consumed_args.add(name)
        glob = ctx.plan.global_args.get(name)
        if name in ctx.build_args:
            value: str | None = ctx.build_args[name]
        elif default is not None:
            value = ctx.expand(instr, default)
        elif glob is not None:
            value = glob
        else:
            value = PLATFORM_ARGS.get(name)
        if value is not None:
            ctx.stage.args[name] = value
            parts.append(f"{name}={value}")
        else:
            parts.append(name)
    ctx.image.add_history(ctx.created, "ARG " + " ".join(parts), empty_layer=True)
    return StepOutcome()


HANDLERS: Mapping[str, Handler] = {
    "RUN": run_step,
    "COPY": copy_step,
    "ADD": copy_step,
    "WORKDIR": workdir_step,
    "ENV": env_step,
    "ARG": arg_step,
    "LABEL": label_step,
    "USER": user_step,
    "CMD": cmd_step,
    "ENTRYPOINT": entrypoint_step,
    "EXPOSE": expose_step,
    "VOLUME": volume_step,
    "STOPSIGNAL": stopsignal_step,
    "SHELL": shell_step,
    "MAINTAINER": maintainer_step,
    "HEALTHCHECK": healthcheck_step,
    "ONBUILD": onbuild_step,
}


@dataclass
class StepRecord:
    """What one step did, for the API, --trace and reports."""

    number: int
    stage: str
    instruction: str
    line: int
    seconds: float
    diff_id: str | None = None
    size: int = 0
    note: str = ""


@dataclass
class BuildResult:
    image_id: str  # the config digest, as Docker's image ID
    config: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)


def history_text(ctx: StepContext, instr: Instruction) -> str:
    if isinstance(instr, Run):
        args = " ".join(command_args(ctx, instr.command))
        scoped = [f"{k}={v}" for k, v in sorted(ctx.stage.args.items()) if k not in PROXY_ARGS]
        prefix = f"|{len(scoped)} {' '.join(scoped)} " if scoped else ""
        return f"RUN {prefix}{args} # buildkit"
    if isinstance(instr, Copy):
        return instr.original.strip() + " # buildkit"
    return instr.original.strip()


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def execute(
    plan: Plan,
    *,
    store: Store,
    options: Options,
    reporter: Reporter,
    context: SourceTree,
    build_args: Mapping[str, str],
) -> tuple[StageState, list[StepRecord], str]:
    """Build the stages the target needs; returns the target's state, records, created."""
    epoch = options.source_date_epoch
    created = rfc3339(epoch if epoch is not None else time.time())
    stages = [plan.stages[i] for i in plan.order]
    total = sum(1 + len(s.instructions) for s in stages)
    records: list[StepRecord] = []
    tmp = Scratch(store)
    try:
        ctx = StepContext(
            store=store,
            options=options,
            reporter=reporter,
            plan=plan,
            stage=StageState(ImageState()),
            context=context,
            tmp=tmp.path,
            created=created,
            build_args=dict(build_args),
        )
        number = 0
        for stage in stages:
            number = run_stage(ctx, stage, number, total, records)
            ctx.stage_images[stage.index] = ctx.stage.image
        unused = sorted(set(build_args) - ctx.consumed_args - PROXY_ARGS)
        if unused:
            reporter.info(f"warning: build-args {', '.join(unused)} were not consumed")
        return ctx.stage, records, created
    finally:
        tmp.close()


def run_stage(
    ctx: StepContext, stage: Stage, number: int, total: int, records: list[StepRecord]
) -> int:
    number += 1
    started = time.monotonic()
    label = f"stage {stage.label}" if len(ctx.plan.order) > 1 else ""
    ctx.reporter.step(number, total, f"FROM {stage.base}" + (f" AS {stage.name}" if stage.name else ""))
    ctx.stage_index = stage.index
    ctx.stage = StageState(base_image(ctx, stage))
    ctx.stage_flags = set()
    ctx.image.ensure_path()
    seconds = time.monotonic() - started
    ctx.reporter.step_done(seconds)
    records.append(StepRecord(number, label or stage.label, "FROM " + stage.base, stage.from_.pos.line, seconds))
    for instr in stage.instructions:
        number += 1
        handler = HANDLERS.get(instr.keyword)
        if handler is None:
            raise fail(instr, f"{instr.keyword} is not supported yet")
        ctx.reporter.step(number, total, instr.original.strip())
        started = time.monotonic()
        ctx.history_text = history_text(ctx, instr)
        outcome = handler(ctx, instr)
        seconds = time.monotonic() - started
        note = outcome.note
        if outcome.diff_id:
            note = (note + ", " if note else "") + f"layer {outcome.diff_id[7:19]} {outcome.size} B"
        ctx.reporter.step_done(seconds, note)
        records.append(
            StepRecord(
                number,
                stage.label,
                instr.original.strip(),
                instr.pos.line,
                seconds,
                outcome.diff_id,
                outcome.size,
                outcome.note,
            )
        )
    return number
