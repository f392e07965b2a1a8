"""ONBUILD triggers: run when an image carrying them is used as a base (BuildKit's
initOnBuildTriggers): parsed from the base's ``OnBuild`` config, run before the stage's
own instructions, and cleared from the new image's config."""

from __future__ import annotations

from ocibuild.builder.step import StepContext
from ocibuild.dockerfile.instructions import Instruction
from ocibuild.dockerfile.parser import parse_trigger
from ocibuild.plan import Stage


def onbuild_triggers(ctx: StepContext, stage: Stage) -> tuple[Instruction, ...]:
    triggers = list(ctx.image.config.pop("OnBuild", None) or [])
    out: list[Instruction] = []
    for text in triggers:
        out.extend(parse_trigger(str(text), stage.from_.pos))
    if out:
        ctx.reporter.info(f"running {len(out)} ONBUILD trigger(s) from {stage.base}")
    return tuple(out)
