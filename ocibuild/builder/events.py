"""The build's one event stream: what a step reports, as typed events.

The executor (and the cache wrapper, and RUN's output pump) emit; every consumer
subscribes to the same stream instead of being called through its own channel:

- the terminal (:class:`TerminalSink`: ``[n/N] ...``, the output indented, ``-> HIT`` or
  ``-> done``), through the build's ``Reporter`` (``ocibuild.observe.log``);
- ``--trace`` (:class:`TraceSink`: one JSON record per finished step, ``ocibuild.observe.trace``);
- the step records of the API's ``BuildResult`` (:class:`RecordSink`);
- the build record, ``--report``, cache explanations and ``--keep-failed`` hooks
  (:class:`ObserverSink` around ``buildlog.BuildObserver`` / ``explain.Explainer``).

A cache hit is the ``cache="hit"`` of :class:`StepFinished`, not a word in a note.
Sinks are called in the emitting thread with the emitting stage's step context (parallel
stages each have their own reporter); a sink never changes the build's state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Union

from ocibuild._record import dataclass, field
from ocibuild.observe.trace import StepTimings, step_record

if TYPE_CHECKING:
    from ocibuild.builder.cache import CacheObserver
    from ocibuild.builder.step import StepContext
    from ocibuild.dockerfile.instructions import Instruction
    from ocibuild.observe.trace import Tracer
    from ocibuild.plan import Stage


@dataclass(frozen=True)
class StepStarted:
    """A step begins: FROM (``instr`` None) or an instruction of ``stage``."""

    number: int
    total: int
    stage: Stage
    text: str  # the step line: the instruction as written, or "FROM base [AS name]"
    line: int
    instr: Instruction | None = None
    index: int = 0  # the instruction's place in the stage (ONBUILD triggers first)


@dataclass(frozen=True)
class CacheDecided:
    """The step's cache decision, before anything runs: ``hit`` (the recorded result is
    replayed), ``miss``, ``off`` (--no-cache) or ``none`` (no key)."""

    number: int
    stage: Stage
    instr: Instruction
    status: str
    key: str | None
    material: dict[str, Any] | None  # the key's inputs (explanations)


@dataclass(frozen=True)
class StepOutput:
    """Bytes the step's process wrote (stdout and stderr, as they come)."""

    data: bytes


@dataclass(frozen=True)
class StepFinished:
    """A step ended well: what it made and where its time went."""

    number: int
    stage: Stage
    text: str
    line: int
    seconds: float
    cache: str = "none"  # hit, miss, off, none (see CacheDecided)
    cache_key: str | None = None
    diff_id: str | None = None
    size: int = 0
    note: str = ""  # what the step says about itself ("exists", "2 files"...)
    timings: StepTimings = field(default_factory=StepTimings)
    is_from: bool = False


@dataclass(frozen=True)
class StepFailed:
    """A step raised (a failing RUN, a missing source, Ctrl-C...)."""

    number: int
    error: BaseException


Event = Union[StepStarted, CacheDecided, StepOutput, StepFinished, StepFailed]  # noqa: UP007
EventSink = Callable[["StepContext", Event], None]


class EventStream:
    """The subscribers of one build; ``emit`` hands each event to every one in order."""

    def __init__(self, sinks: list[EventSink] | None = None) -> None:
        self.sinks: list[EventSink] = list(sinks or [])

    def subscribe(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def emit(self, ctx: StepContext, event: Event) -> None:
        for sink in self.sinks:
            sink(ctx, event)


def TerminalSink(ctx: StepContext, event: Event) -> None:
    """The step lines, through the stage's reporter (``ocibuild.observe.log``)."""
    reporter = ctx.reporter
    if isinstance(event, StepStarted):
        reporter.step(event.number, event.total, event.text)
    elif isinstance(event, StepOutput):
        reporter.output(event.data)
    elif isinstance(event, StepFinished):
        note = event.note
        if event.diff_id:
            note = (note + ", " if note else "") + f"layer {event.diff_id[7:19]} {event.size} B"
        reporter.step_done(event.seconds, note, cached=event.cache == "hit")


class TraceSink:
    """``--trace``: the record of each finished step (a failed one: see ObserverSink)."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def __call__(self, ctx: StepContext, event: Event) -> None:
        if isinstance(event, StepFinished):
            self.tracer.write(trace_record(event))


def trace_record(event: StepFinished) -> dict[str, Any]:
    return step_record(
        number=event.number,
        stage=event.stage.label,
        instruction=event.text,
        line=event.line,
        seconds=event.seconds,
        cache=event.cache,
        cache_key=event.cache_key,
        timings=event.timings,
        diff_id=event.diff_id,
    )


class RecordSink:
    """The API's step records (``BuildResult.steps``), one per finished step."""

    def __init__(self, records: list[Any], make: Callable[[StepFinished], Any]) -> None:
        self.records = records
        self.make = make

    def __call__(self, ctx: StepContext, event: Event) -> None:
        if isinstance(event, StepFinished):
            self.records.append(self.make(event))


class ObserverSink:
    """The build record, explanations and forensics hooks (``buildlog.BuildObserver``):
    told of instruction steps only (FROM has no cache decision)."""

    def __init__(self, observer: CacheObserver) -> None:
        self.observer = observer

    def __call__(self, ctx: StepContext, event: Event) -> None:
        if isinstance(event, StepStarted) and event.instr is not None:
            self.observer.begin(ctx, event.stage, event.number, event.index, event.instr)
        elif isinstance(event, CacheDecided):
            self.observer.decided(
                ctx, event.stage, event.instr, event.material, event.key, event.status
            )
        elif isinstance(event, StepFinished) and not event.is_from:
            self.observer.finished(ctx, event.number, trace_record(event), None)
        elif isinstance(event, StepFailed):
            self.observer.finished(ctx, event.number, None, event.error)
