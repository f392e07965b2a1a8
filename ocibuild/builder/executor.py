"""Run a plan: stage by stage, instruction by instruction, through an explicit table."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from ocibuild._record import dataclass, field
from ocibuild.builder.cache import CacheObserver, StepCache, run_with_cache
from ocibuild.builder.context import SourceTree
from ocibuild.builder.events import (
    EventStream,
    ObserverSink,
    RecordSink,
    StepFailed,
    StepFinished,
    StepStarted,
    TerminalSink,
    TraceSink,
)
from ocibuild.builder.onbuild import build_trigger_stages, onbuild_triggers
from ocibuild.builder.scratch import Scratch
from ocibuild.builder.source import base_state
from ocibuild.builder.stages import run_stages
from ocibuild.builder.state import ImageState, StageState
from ocibuild.builder.step import Build, StepContext, StepOutcome
from ocibuild.dockerfile.instructions import (
    Arg,
    Instruction,
)
from ocibuild.errors import Interrupted
from ocibuild.fs.reaper import Reaper
from ocibuild.image.store import Store
from ocibuild.observe.log import Reporter
from ocibuild.observe.trace import StepTimings, Tracer
from ocibuild.options import Options
from ocibuild.plan import PROXY_ARGS, Plan, Stage
from ocibuild.runtime.network import BuildNetwork


def dispatch(ctx: StepContext, instr: Instruction) -> StepOutcome:
    """Plan the step from the stage's state (pure, ``builder/planners.py``), then apply
    the plan (the effects, then the config and history changes). ``instr``'s words are
    expanded already. The planning modules load on the first miss."""
    from ocibuild.builder.planners import plan_step
    from ocibuild.builder.stepplan import StepView, apply_plan

    return apply_plan(ctx, plan_step(StepView.of(ctx), instr))


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


def rfc3339(epoch: float) -> str:
    """``2006-01-02T15:04:05Z`` in UTC (whole seconds; no datetime import at start-up)."""
    t = time.gmtime(epoch)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}Z"
    )


def execute(
    plan: Plan,
    *,
    store: Store,
    options: Options,
    reporter: Reporter,
    context: SourceTree,
    build_args: Mapping[str, str],
    observer: CacheObserver | None = None,
    cancel: threading.Event | None = None,
) -> tuple[StageState, list[StepRecord], str]:
    """Build the stages the target needs; returns the target's state, records, created.
    ``cancel``, once set (from another thread), stops the build: the running RUN is
    killed, no next step starts (Interrupted)."""
    epoch = options.source_date_epoch
    created = rfc3339(epoch if epoch is not None else time.time())
    stages = [plan.stages[i] for i in plan.order]
    for warning in plan.warnings:
        reporter.info(f"warning: {warning}")
    total = sum(1 + len(s.instructions) for s in stages)
    records: list[StepRecord] = []
    tmp = Scratch(store, lazy=True)  # made by the first step that needs it
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
    tracer = Tracer(options.trace) if options.trace else None
    # the one event stream: terminal, API records, --trace, build record + explanations
    events = EventStream([TerminalSink, RecordSink(records, step_record_of)])
    if tracer is not None:
        events.subscribe(TraceSink(tracer))
    if observer is not None:
        events.subscribe(ObserverSink(observer))
    network = BuildNetwork(tmp.path, debug=reporter.debug)
    reaper = Reaper()
    try:
        build = Build(
            store=store,
            options=options,
            plan=plan,
            context=context,
            scratch=tmp,
            created=created,
            build_args=dict(build_args),
            cache=cache,
            tracer=tracer,
            network=network,
            events=events,
            cancelled=cancel if cancel is not None else threading.Event(),
            reaper=reaper,
        )
        ctx = StepContext(build, reporter, StageState(ImageState()))
        final = run_stages(ctx, stages, total, run_stage)
        records.sort(key=lambda r: r.number)
        steps = [r for r in records if not r.instruction.startswith("FROM ")]
        if epoch is None and steps and all(r.cache == "hit" for r in steps):
            # Nothing ran: the image (and its ID) is the one the recorded steps made.
            created = created_of(final.image.history[-1]) if final.image.history else created
        # a global ARG (declared before the first FROM) consumes its build-arg, as Docker's
        # builder counts it, even when only a FROM line uses it
        declared = ctx.consumed_args | set(plan.global_args) | PROXY_ARGS
        unused = sorted(set(build_args) - declared)
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
        reaper.drain()
        tmp.close()


def created_of(entry: dict[str, Any]) -> str:
    return str(entry.get("created") or "")


def step_record_of(event: StepFinished) -> StepRecord:
    """The API's record of a finished step."""
    return StepRecord(
        event.number,
        event.stage.label,
        event.text,
        event.line,
        event.seconds,
        event.diff_id,
        event.size,
        event.note,
        "none" if event.is_from else event.cache,
        None if event.is_from else event.timings,
    )


def run_stage(ctx: StepContext, stage: Stage, number: int, total: int) -> int:
    """Build ``stage``'s steps, numbered from ``number + 1``; returns the last number.
    Each step reports through ``ctx.emit``: started, cache decided, output, finished or
    failed (:mod:`ocibuild.builder.events`)."""
    number += 1
    started = time.monotonic()
    text = f"FROM {stage.base}" + (f" AS {stage.name}" if stage.name else "")
    ctx.emit(StepStarted(number, total, stage, text, stage.from_.pos.line))
    ctx.stage_index = stage.index
    ctx.stage = base_state(ctx, stage)
    ctx.stage_flags = set()
    ctx.image.ensure_path()
    triggers = onbuild_triggers(ctx, stage)  # ONBUILD of the base run first
    seconds = time.monotonic() - started
    line = stage.from_.pos.line
    ctx.emit(StepFinished(number, stage, "FROM " + stage.base, line, seconds, is_from=True))
    number = build_trigger_stages(  # stages an ONBUILD of a base image names
        ctx, triggers, number, lambda c, s, n: run_stage(c, s, n, total)
    )
    for index, instr in enumerate((*triggers, *stage.instructions)):
        number += 1
        if ctx.cancelled.is_set():
            raise Interrupted(signal.SIGINT)
        text = instr.original.strip()
        started = time.monotonic()
        ctx.timings = StepTimings()
        ctx.step_plan = None
        ctx.emit(StepStarted(number, total, stage, text, instr.pos.line, instr, index))
        try:
            expanded = ctx.expanded(instr)  # the one expansion pass
            outcome, cached, cache_key = run_with_cache(
                ctx, stage, number, instr, dispatch, expanded
            )
        except BaseException as exc:
            ctx.emit(StepFailed(number, exc))
            raise
        if isinstance(instr, Arg):  # cached or not: later RUN history lists them
            ctx.stage.declared.extend(name for name, _ in instr.args)
        ctx.emit(
            StepFinished(
                number,
                stage,
                text,
                instr.pos.line,
                time.monotonic() - started,
                cached,
                cache_key,
                outcome.diff_id,
                outcome.size,
                outcome.note,
                ctx.timings,
            )
        )
    return number
