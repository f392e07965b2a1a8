"""What every step gets (the build, the stage's state), and what it hands back."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from ocibuild._record import dataclass, field
from ocibuild.builder.state import ImageState, StageState
from ocibuild.dockerfile.expand import expand_word, expand_words
from ocibuild.dockerfile.expansion import expand_instruction
from ocibuild.dockerfile.instructions import Instruction
from ocibuild.errors import BuildError, ExpansionError
from ocibuild.observe.log import Reporter
from ocibuild.observe.trace import StepTimings
from ocibuild.options import Options
from ocibuild.plan import Plan

I = TypeVar("I", bound=Instruction)  # noqa: E741

if TYPE_CHECKING:
    from ocibuild.builder.cache import StepCache
    from ocibuild.builder.context import SourceTree
    from ocibuild.builder.events import Event, EventStream
    from ocibuild.builder.stepplan import StepPlan
    from ocibuild.fs.reaper import Reaper
    from ocibuild.image.store import Store
    from ocibuild.observe.trace import Tracer
    from ocibuild.runtime.network import BuildNetwork


@dataclass
class StepOutcome:
    """The filesystem result of a step: a new layer, or none (metadata only)."""

    diff_id: str | None = None
    size: int = 0
    note: str = ""


@dataclass(frozen=True)
class Build:
    """What every step of one build shares and no step replaces: the store, the options,
    the plan, the context, the cache, the event stream... (the objects themselves may
    keep their own state: the cache its index, the network its namespace)."""

    store: Store
    options: Options
    plan: Plan
    context: SourceTree
    tmp: str  # this build's scratch dir inside the store
    created: str  # RFC 3339 timestamp for history and config
    build_args: Mapping[str, str] = field(default_factory=dict)
    cache: StepCache | None = None  # None: no cache at all (not even recording)
    tracer: Tracer | None = None
    network: BuildNetwork | None = None  # the build's private network (RUN --network)
    events: EventStream | None = None  # where steps report (ocibuild.builder.events)
    cancelled: threading.Event = field(default_factory=threading.Event)  # stop at next step
    reaper: Reaper | None = None  # removes steps' scratch dirs in the background
    # filled in as stages end (shared by the stage threads)
    stage_images: dict[int, ImageState] = field(default_factory=dict)
    stage_args: dict[int, dict[str, str]] = field(default_factory=dict)  # ARG values at end
    consumed_args: set[str] = field(default_factory=set)  # --build-arg names used


@dataclass
class StepContext:
    """One stage's view of the build while its steps run: the shared :class:`Build`, the
    stage's reporter and state, and what the step being run records about itself.
    Planned steps change the stage only through ``stepplan.apply_plan``."""

    build: Build
    reporter: Reporter
    stage: StageState
    stage_index: int = 0
    stage_flags: set[str] = field(default_factory=set)
    timings: StepTimings = field(default_factory=StepTimings)  # of the step being run
    on_bundle: Callable[[str], None] | None = None  # --keep-bundles/--keep-failed hook
    step_plan: StepPlan | None = None  # the plan being applied (--keep-failed records it)

    def emit(self, event: Event) -> None:
        """Report ``event`` to every subscriber of the build's event stream."""
        if self.build.events is not None:
            self.build.events.emit(self, event)

    def output(self, data: bytes) -> None:
        """The step's process output (an event; the terminal shows it indented)."""
        from ocibuild.builder.events import StepOutput

        self.emit(StepOutput(data))

    # -- the build's parts, by their old names -------------------------------------
    @property
    def store(self) -> Store:
        return self.build.store

    @property
    def options(self) -> Options:
        return self.build.options

    @property
    def plan(self) -> Plan:
        return self.build.plan

    @property
    def context(self) -> SourceTree:
        return self.build.context

    @property
    def tmp(self) -> str:
        return self.build.tmp

    @property
    def created(self) -> str:
        return self.build.created

    @property
    def build_args(self) -> Mapping[str, str]:
        return self.build.build_args

    @property
    def cache(self) -> StepCache | None:
        return self.build.cache

    @property
    def tracer(self) -> Tracer | None:
        return self.build.tracer

    @property
    def network(self) -> BuildNetwork | None:
        return self.build.network

    @property
    def cancelled(self) -> threading.Event:
        return self.build.cancelled

    @property
    def stage_images(self) -> dict[int, ImageState]:
        return self.build.stage_images

    @property
    def stage_args(self) -> dict[int, dict[str, str]]:
        return self.build.stage_args

    @property
    def consumed_args(self) -> set[str]:
        return self.build.consumed_args

    @property
    def escape(self) -> str:
        return self.plan.escape

    @property
    def image(self) -> ImageState:
        return self.stage.image

    def expanded(self, instr: I) -> I:
        """``instr`` with its words expanded with the stage's environment: the one
        expansion pass before dispatch (``dockerfile/expansion.py``); its errors name the
        instruction's position."""
        return expand_instruction(
            instr, lambda w: self.expand(instr, w), lambda w: self.expand_words(instr, w)
        )

    def expand(self, instr: Instruction, word: str) -> str:
        try:
            return expand_word(word, self.stage.expand_env(), self.escape)
        except ExpansionError as exc:
            raise fail(instr, exc.message) from None

    def expand_words(self, instr: Instruction, word: str) -> list[str]:
        try:
            return expand_words(word, self.stage.expand_env(), self.escape)
        except ExpansionError as exc:
            raise fail(instr, exc.message) from None


def fail(instr: Instruction, message: str, hint: str | None = None) -> BuildError:
    return BuildError(
        message, pos=instr.pos, source=instr.original, instruction=instr.keyword, hint=hint
    )
