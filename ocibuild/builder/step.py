"""What every instruction handler gets, and what it hands back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ocibuild.builder.state import ImageState, StageState
from ocibuild.dockerfile.expand import expand_word, expand_words
from ocibuild.dockerfile.instructions import Instruction
from ocibuild.errors import BuildError, ExpansionError
from ocibuild.observe.log import Reporter
from ocibuild.observe.trace import StepTimings
from ocibuild.options import Options
from ocibuild.plan import Plan

if TYPE_CHECKING:
    from ocibuild.builder.cache import StepCache
    from ocibuild.builder.context import SourceTree
    from ocibuild.image.store import Store
    from ocibuild.observe.trace import Tracer
    from ocibuild.runtime.network import BuildNetwork


@dataclass
class StepOutcome:
    """The filesystem result of a step: a new layer, or none (metadata only)."""

    diff_id: str | None = None
    size: int = 0
    note: str = ""


@dataclass
class StepContext:
    store: Store
    options: Options
    reporter: Reporter
    plan: Plan
    stage: StageState
    context: SourceTree
    tmp: str  # this build's scratch dir inside the store
    created: str  # RFC 3339 timestamp for history and config
    stage_images: dict[int, ImageState] = field(default_factory=dict)
    stage_args: dict[int, dict[str, str]] = field(default_factory=dict)  # ARG values at end
    stage_index: int = 0
    stage_flags: set[str] = field(default_factory=set)
    build_args: dict[str, str] = field(default_factory=dict)
    consumed_args: set[str] = field(default_factory=set)
    history_text: str = ""  # created_by of the step being run
    records: list[object] = field(default_factory=list)
    on_bundle: Callable[[str], None] | None = None
    cache: StepCache | None = None  # None: no cache at all (not even recording)
    tracer: Tracer | None = None
    timings: StepTimings = field(default_factory=StepTimings)  # of the step being run
    cancelled: threading.Event = field(default_factory=threading.Event)  # stop at next step
    network: BuildNetwork | None = None  # the build's private network (RUN --network)

    @property
    def escape(self) -> str:
        return self.plan.escape

    @property
    def image(self) -> ImageState:
        return self.stage.image

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
