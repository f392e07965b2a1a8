"""ONBUILD triggers: run when an image carrying them is used as a base (BuildKit's
initOnBuildTriggers): parsed from the base's ``OnBuild`` config, run before the stage's
own instructions, and cleared from the new image's config.

A trigger may name a stage of the Dockerfile being built (``ONBUILD COPY --from=NAME``,
``ONBUILD RUN --mount=from=NAME``), as current BuildKit allows (4cf7a1a0d). When the
base is a stage of the same Dockerfile, the plan makes those stages dependencies
(``Plan.deps``); when the base is an image, its triggers are only known
once it is read, and ``build_trigger_stages`` builds the stages they name right then.
"""

from __future__ import annotations

from collections.abc import Callable

from ocibuild import _record
from ocibuild.builder.state import ImageState, StageState
from ocibuild.builder.step import StepContext
from ocibuild.dockerfile.instructions import Copy, Instruction, Run
from ocibuild.dockerfile.parser import parse_trigger
from ocibuild.observe.trace import StepTimings
from ocibuild.plan import Stage, mount_from_refs


def onbuild_triggers(ctx: StepContext, stage: Stage) -> tuple[Instruction, ...]:
    triggers = list(ctx.image.config.pop("OnBuild", None) or [])
    out: list[Instruction] = []
    for text in triggers:
        out.extend(parse_trigger(str(text), stage.from_.pos))
    if out:
        ctx.reporter.info(f"running {len(out)} ONBUILD trigger(s) from {stage.base}")
    return tuple(out)


def trigger_stages(ctx: StepContext, triggers: tuple[Instruction, ...]) -> list[int]:
    """The earlier stages the triggers name that are not built yet, with the unbuilt
    stages those depend on, in build order."""
    refs: list[str] = []
    for instr in triggers:
        if isinstance(instr, Copy):
            refs += [instr.from_] if instr.from_ is not None else []
        elif isinstance(instr, Run):
            refs += mount_from_refs(instr)
    todo = [i for ref in refs if (i := ctx.plan.stage_ref(ref, ctx.stage_index)) is not None]
    out: set[int] = set()
    while todo:
        index = todo.pop()
        if index in out or index in ctx.stage_images:
            continue
        out.add(index)
        todo.extend(ctx.plan.deps[index])  # the plan's stage graph
    return sorted(out)


RunStage = Callable[[StepContext, Stage, int], int]  # (ctx, stage, step number) -> number


def build_trigger_stages(
    ctx: StepContext, triggers: tuple[Instruction, ...], number: int, run: RunStage
) -> int:
    """Build the stages the triggers of a base *image* name (see the module docstring),
    each with a context of its own; returns the last step number used."""
    for index in trigger_stages(ctx, triggers):
        sub = _record.replace(
            ctx, stage=StageState(ImageState()), stage_flags=set(), timings=StepTimings()
        )
        number = run(sub, ctx.plan.stages[index], number)
        ctx.stage_images[index] = sub.stage.image
        ctx.stage_args[index] = dict(sub.stage.args)
    return number
