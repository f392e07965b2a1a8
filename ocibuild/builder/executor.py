"""Run a plan: stage by stage, instruction by instruction, through an explicit table."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ocibuild.builder.cache import CacheObserver, StepCache, run_with_cache
from ocibuild.builder.context import SourceTree
from ocibuild.builder.metadata import (
    cmd_step,
    command_args,
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
from ocibuild.builder.onbuild import build_trigger_stages, onbuild_triggers
from ocibuild.builder.scratch import Scratch
from ocibuild.builder.source import base_state
from ocibuild.builder.stages import run_stages
from ocibuild.builder.state import ImageState, StageState
from ocibuild.builder.step import StepContext, StepOutcome, fail
from ocibuild.dockerfile.instructions import Arg, Copy, Instruction, Run
from ocibuild.errors import Interrupted
from ocibuild.image.store import Store
from ocibuild.observe.log import Reporter
from ocibuild.observe.trace import StepTimings, Tracer, step_record
from ocibuild.options import Options
from ocibuild.plan import PROXY_ARGS, Plan, Stage
from ocibuild.runtime.network import BuildNetwork

Handler = Callable[[StepContext, Instruction], StepOutcome]


# RUN and COPY/ADD load the runtime, overlay and layer machinery (and urllib for ADD
# URLs): imported at their first use, so a fully cached build never pays for them.
def run_step(ctx: StepContext, instr: Instruction) -> StepOutcome:
    from ocibuild.builder.run import run_step as handler

    return handler(ctx, instr)


def copy_step(ctx: StepContext, instr: Instruction) -> StepOutcome:
    from ocibuild.builder.copy import copy_step as handler

    return handler(ctx, instr)


def workdir_step(ctx: StepContext, instr: Instruction) -> StepOutcome:
    from ocibuild.builder.workdir import workdir_step as handler

    return handler(ctx, instr)


def arg_step(ctx: StepContext, instr: Instruction) -> StepOutcome:
    """ARG: a value (--build-arg, else the default, else the global ARG's) goes into the
    stage's environment; the history shows the ARG as written, its default expanded
    (BuildKit's ``ARG name[=default]``, not the --build-arg value). All defaults of one
    ARG are expanded first, as BuildKit does: ``ARG A=1 B=$A`` does not see this A."""
    assert isinstance(instr, Arg)
    parts = []
    defaults = [None if d is None else ctx.expand(instr, d) for _, d in instr.args]
    for (name, _), expanded in zip(instr.args, defaults, strict=True):
        ctx.consumed_args.add(name)
        glob = ctx.plan.global_args.get(name)
        if name in ctx.build_args:
            value: str | None = ctx.build_args[name]
        elif expanded is not None:
            value = expanded
        elif glob is not None:
            value = glob
        else:
            value = ctx.plan.platform_args.get(name)
        if value is not None:
            ctx.stage.args[name] = value
        parts.append(name if expanded is None else f"{name}={expanded}")
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
    cache: str = "none"  # hit, miss, off (--no-cache), none (no key: FROM, errors)
    timings: StepTimings | None = None  # seconds per phase (key, prepare, diff, hash...)


@dataclass
class BuildResult:
    image_id: str  # the config digest, as Docker's image ID
    config: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    build_id: str = ""  # the build's record in the store (ocibuild builds / logs)


def history_text(ctx: StepContext, instr: Instruction) -> str:
    if isinstance(instr, Run):
        args = " ".join(command_args(ctx, instr.command))
        # BuildKit: the ARGs declared in this stage, in order, each with its value in
        # the build environment ("" when it has none)
        env = ctx.stage.expand_env()
        scoped = [f"{k}={env.get(k, '')}" for k in ctx.stage.declared if k not in PROXY_ARGS]
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
    observer: CacheObserver | None = None,
) -> tuple[StageState, list[StepRecord], str]:
    """Build the stages the target needs; returns the target's state, records, created."""
    epoch = options.source_date_epoch
    created = rfc3339(epoch if epoch is not None else time.time())
    stages = [plan.stages[i] for i in plan.order]
    for warning in plan.warnings:
        reporter.info(f"warning: {warning}")
    total = sum(1 + len(s.instructions) for s in stages)
    records: list[StepRecord] = []
    tmp = Scratch(store)
    remote = None
    if options.cache_from or options.cache_to:  # registries only when asked for
        from ocibuild.builder.remote_cache import remote_cache

        remote = remote_cache(
            store,
            cache_from=options.cache_from,
            cache_to=options.cache_to,
            compression=options.compression,
            tls_verify=options.tls_verify,
            reporter=reporter,
        )
    cache = StepCache(
        store,
        context.root,
        no_cache=options.no_cache,
        no_cache_filter=options.no_cache_filter,
        remote=remote,
    )
    cache.observer = observer  # explains decisions, records the build (ocibuild.observe.records)
    tracer = Tracer(options.trace) if options.trace else None
    network = BuildNetwork(tmp.path, debug=reporter.debug)
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
            cache=cache,
            tracer=tracer,
            network=network,
        )
        final = run_stages(ctx, stages, total, records, run_stage)
        records.sort(key=lambda r: r.number)
        steps = [r for r in records if not r.instruction.startswith("FROM ")]
        if epoch is None and steps and all(r.cache == "hit" for r in steps):
            # Nothing ran: the image (and its ID) is the one the recorded steps made.
            created = created_of(final.image.history[-1]) if final.image.history else created
        unused = sorted(set(build_args) - ctx.consumed_args - PROXY_ARGS)
        if unused:
            reporter.info(f"warning: build-args {', '.join(unused)} were not consumed")
        if remote is not None:
            remote.export(plan.target)
        return final, records, created
    finally:
        network.close()
        cache.close()
        if tracer is not None:
            tracer.close()
        tmp.close()


def created_of(entry: dict[str, Any]) -> str:
    return str(entry.get("created") or "")


def run_stage(
    ctx: StepContext, stage: Stage, number: int, total: int, records: list[StepRecord]
) -> int:
    number += 1
    started = time.monotonic()
    ctx.reporter.step(
        number, total, f"FROM {stage.base}" + (f" AS {stage.name}" if stage.name else "")
    )
    ctx.stage_index = stage.index
    ctx.stage = base_state(ctx, stage)
    ctx.stage_flags = set()
    ctx.image.ensure_path()
    triggers = onbuild_triggers(ctx, stage)  # ONBUILD of the base run first
    seconds = time.monotonic() - started
    ctx.reporter.step_done(seconds)
    records.append(
        StepRecord(number, stage.label, "FROM " + stage.base, stage.from_.pos.line, seconds)
    )
    number = build_trigger_stages(  # stages an ONBUILD of a base image names
        ctx, triggers, number, lambda c, s, n: run_stage(c, s, n, total, records)
    )
    observer = ctx.cache.observer if ctx.cache is not None else None
    for index, instr in enumerate((*triggers, *stage.instructions)):
        number += 1
        handler = HANDLERS.get(instr.keyword)
        if handler is None:
            raise fail(instr, f"{instr.keyword} is not supported yet")
        if ctx.cancelled.is_set():
            raise Interrupted(signal.SIGINT)
        ctx.reporter.step(number, total, instr.original.strip())
        started = time.monotonic()
        ctx.timings = StepTimings()
        ctx.history_text = history_text(ctx, instr)
        if observer is not None:  # cache explanations, build log, --keep-failed
            observer.begin(ctx, stage, number, index, instr)
        try:
            outcome, cached, cache_key = run_with_cache(ctx, stage, instr, handler)
        except BaseException as exc:
            if observer is not None:
                observer.finished(ctx, number, None, exc)
            raise
        if isinstance(instr, Arg):  # cached or not: later RUN history lists them
            ctx.stage.declared.extend(name for name, _ in instr.args)
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
                cached,
                ctx.timings,
            )
        )
        if ctx.tracer is not None or observer is not None:
            trace = step_record(
                number=number,
                stage=stage.label,
                instruction=instr.original.strip(),
                line=instr.pos.line,
                seconds=seconds,
                cache=cached,
                cache_key=cache_key,
                timings=ctx.timings,
                diff_id=outcome.diff_id,
            )
            if ctx.tracer is not None:
                ctx.tracer.write(trace)
            if observer is not None:
                observer.finished(ctx, number, trace, None)
    return number
