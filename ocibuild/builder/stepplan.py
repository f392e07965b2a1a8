"""A step in two parts: a pure plan, then a small apply run by the executor.

``plan_*`` functions (``planners.py``, ``metadata.py``, ``workdir.py``) read a :class:`StepView`
(the stage's state before the step, read-only) and the typed instruction, and return a
:class:`StepPlan`: the config change, the history entry, the ARG values, and the
:class:`Effect` objects to perform (filesystem work: a RUN, a COPY, WORKDIR's mkdir).
Nothing in a plan has happened yet; every part can describe itself (``--debug`` prints
the description before applying it, ``--keep-failed`` records it).

:func:`apply_plan` is the only code that changes the stage: it performs the effects (each
makes a layer in the store, or none) and adds their layers and history entries, then
sets the config, ARG values and stage flags and appends the empty-layer history entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ocibuild._record import dataclass, field
from ocibuild.builder.step import StepOutcome, fail
from ocibuild.dockerfile.expand import expand_word, expand_words
from ocibuild.dockerfile.expansion import expand_instruction
from ocibuild.dockerfile.instructions import Instruction
from ocibuild.errors import ExpansionError

I = TypeVar("I", bound=Instruction)  # noqa: E741

if TYPE_CHECKING:
    from ocibuild.builder.state import StageState
    from ocibuild.builder.step import StepContext
    from ocibuild.plan import Plan


@dataclass(frozen=True)
class StepView:
    """What a plan may read: the stage before the step. Planners never change it."""

    stage: StageState
    plan: Plan
    flags: frozenset[str]  # the stage's flags (``cmd_set``)
    build_args: Mapping[str, str]

    @classmethod
    def of(cls, ctx: StepContext) -> StepView:
        return cls(ctx.stage, ctx.plan, frozenset(ctx.stage_flags), ctx.build_args)

    @property
    def config(self) -> Mapping[str, Any]:
        return self.stage.image.config

    @property
    def shell(self) -> list[str]:
        return self.stage.image.shell

    @cached_property
    def env(self) -> dict[str, str]:
        """The variables words expand with: image Env, then the ARG values."""
        return self.stage.expand_env()

    def expanded(self, instr: I) -> I:
        """``instr`` with its words expanded: the one expansion pass before dispatch
        (``dockerfile/expansion.py``); its errors name the instruction's position."""
        return expand_instruction(
            instr, lambda w: self.expand(instr, w), lambda w: self.expand_words(instr, w)
        )

    def expand(self, instr: Instruction, word: str) -> str:
        try:
            return expand_word(word, self.env, self.plan.escape)
        except ExpansionError as exc:
            raise fail(instr, exc.message) from None

    def expand_words(self, instr: Instruction, word: str) -> list[str]:
        try:
            return expand_words(word, self.env, self.plan.escape)
        except ExpansionError as exc:
            raise fail(instr, exc.message) from None


class Effect(Protocol):
    """Work on the filesystem a step plans: described first, performed by the executor."""

    def describe(self) -> str: ...

    def perform(self, ctx: StepContext) -> StepOutcome: ...


@dataclass(frozen=True)
class HandlerEffect:
    """An effect carried out by a builder module (RUN, COPY/ADD, WORKDIR): it mounts the
    layers, does the work, commits the upper dir as a layer and records its history."""

    description: str
    run: Callable[[StepContext], StepOutcome]

    def describe(self) -> str:
        return self.description

    def perform(self, ctx: StepContext) -> StepOutcome:
        return self.run(ctx)


@dataclass(frozen=True)
class StepPlan:
    """What a step will do. ``config`` keys are set, ``unset`` keys removed; ``history``
    is the ``created_by`` of an empty-layer history entry (effects that make a layer
    record their own)."""

    history: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    author: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)  # ARG values set
    args_unset: tuple[str, ...] = ()  # ARG values a later ENV replaces
    consumed: tuple[str, ...] = ()  # --build-arg names used
    flags: tuple[str, ...] = ()  # stage flags set (cmd_set)
    effects: tuple[Effect, ...] = ()
    layer_history: str = ""  # created_by of the layer (or empty layer) an effect makes
    note: str = ""

    def describe(self) -> list[str]:
        """One line per part, in the order :func:`apply_plan` applies them."""
        lines = [f"effect: {e.describe()}" for e in self.effects]
        for key, value in self.config.items():
            lines.append(f"config: {key} = {json.dumps(value, sort_keys=True)}")
        lines += [f"config: remove {key}" for key in self.unset]
        if self.author is not None:
            lines.append(f"author: {self.author}")
        lines += [f"arg: {k}={v}" for k, v in self.args.items()]
        lines += [f"flag: {f}" for f in self.flags]
        if self.history is not None:
            lines.append(f"history: {self.history} (empty layer)")
        if self.layer_history:
            lines.append(f"history: {self.layer_history}")
        return lines


def apply_plan(ctx: StepContext, plan: StepPlan) -> StepOutcome:
    """Perform ``plan`` on the stage: its effects, then its config, ARG and history
    changes. The only place a planned step changes state."""
    ctx.step_plan = plan
    for line in plan.describe():
        ctx.reporter.debug("plan: " + line)
    outcome = StepOutcome(note=plan.note)
    image = ctx.image
    for effect in plan.effects:
        outcome = effect.perform(ctx)  # makes a layer in the store, or none
        if outcome.diff_id is not None:
            image.diff_ids.append(outcome.diff_id)
        image.add_history(ctx.created, plan.layer_history, empty_layer=outcome.diff_id is None)
    for key in plan.unset:
        image.config.pop(key, None)
    image.config.update(plan.config)
    if plan.author is not None:
        image.author = plan.author
    for key in plan.args_unset:
        ctx.stage.args.pop(key, None)
    ctx.stage.args.update(plan.args)
    ctx.consumed_args.update(plan.consumed)
    ctx.stage_flags.update(plan.flags)
    if plan.history is not None:
        image.add_history(ctx.created, plan.history, empty_layer=True)
    return outcome
