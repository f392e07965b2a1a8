"""FROM: where a stage's base image comes from."""

from __future__ import annotations

import os

from ocibuild.builder.state import ImageState, StageState, scratch_image
from ocibuild.builder.step import StepContext, fail
from ocibuild.errors import BuildError, OcibuildError
from ocibuild.plan import Plan, Stage, platform_value
from ocibuild.platforms import Platform, parse_platform, runnable_problem

OCI_LAYOUT = "oci-layout://"


def split_layout_ref(ref: str) -> tuple[str, str | None]:
    """``oci-layout://DIR[:TAG]`` -> (DIR, TAG or None)."""
    rest = ref[len(OCI_LAYOUT) :]
    head, sep, tag = rest.rpartition(":")
    if sep and "/" not in tag and head:
        return head, tag
    return rest, None


def check_stage_platforms(plan: Plan) -> None:
    """Before the first step: every stage to build whose FROM --platform names a platform
    that cannot run here (no emulator) and that has a RUN is refused, with its position."""
    for index in plan.order:
        stage = plan.stages[index]
        if stage.from_.platform is not None:
            _stage_platform(plan, stage)


def _stage_platform(plan: Plan, stage: Stage) -> Platform:
    instr = stage.from_
    if instr.platform is None:
        return parse_platform(plan.platform_args["TARGETPLATFORM"])
    value = platform_value(instr, instr.platform, plan.global_args, plan.platform_args)
    try:
        platform = parse_platform(value)
    except OcibuildError as exc:
        raise fail(instr, exc.message, hint=exc.hint) from None
    problem = runnable_problem(platform)
    if problem is not None and any(i.keyword == "RUN" for i in stage.instructions):
        raise fail(instr, problem[0], hint=problem[1])
    return platform


def stage_platform(ctx: StepContext, stage: Stage) -> Platform:
    """The platform a stage is built for: FROM --platform (expanded with the global and
    predefined ARGs: ``--platform=$BUILDPLATFORM``), else the build's target platform. One
    whose programs cannot run here (no emulator) is refused before anything is pulled."""
    return _stage_platform(ctx.plan, stage)


def base_image(ctx: StepContext, stage: Stage) -> ImageState:
    instr = stage.from_
    platform = stage_platform(ctx, stage)
    if stage.base_stage is not None:
        return ctx.stage_images[stage.base_stage].copy()
    if stage.base == "scratch":  # BuildKit: the target platform's, whatever FROM --platform
        target = parse_platform(ctx.plan.platform_args["TARGETPLATFORM"])
        image = scratch_image()
        image.os, image.architecture, image.variant = (
            target.os,
            target.architecture,
            target.variant,
        )
        return image
    try:
        if stage.base.startswith(OCI_LAYOUT):
            path, tag = split_layout_ref(stage.base)
            path = os.path.abspath(path)
            if not os.path.isdir(path):
                raise fail(instr, f"no OCI layout at {path}", hint="give the layout's directory")
            from ocibuild.image.layout import import_oci_layout  # compressors: lazily

            image_id = import_oci_layout(ctx.store, path, tag, platform)
        else:
            from ocibuild.registry.base import resolve_base  # only now: oras is slow to import

            image_id = resolve_base(
                ctx.store,
                stage.base,
                policy=ctx.options.pull,
                tls_verify=ctx.options.tls_verify,
                reporter=ctx.reporter,
                platform=str(platform),
            )
        config = ctx.store.get_config(image_id)
    except BuildError:
        raise
    except OcibuildError as exc:
        raise fail(
            instr,
            f"base image {stage.base!r}: {exc.message}",
            hint=exc.hint
            or "build it first, pull it (ocibuild pull NAME), or import it with "
            "FROM oci-layout://DIR",
        ) from None
    return ImageState.from_json(config).derived()


def base_state(ctx: StepContext, stage: Stage) -> StageState:
    """The state a stage starts from: its base image and, when FROM names an earlier
    stage, that stage's ARG values (BuildKit carries them: RUN and expansion see them)."""
    state = StageState(base_image(ctx, stage))
    state.image.ensure_path()
    if stage.base_stage is not None:
        state.inherit_args(ctx.stage_args.get(stage.base_stage, {}))
    return state
