"""Instructions + build args -> stages and the order to build them in. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ocibuild._record import dataclass, field
from ocibuild.dockerfile.expand import expand_word, go_quote
from ocibuild.dockerfile.instructions import (
    Arg,
    Copy,
    Dockerfile,
    From,
    Instruction,
    Onbuild,
    Run,
)
from ocibuild.errors import DockerfileError, ExpansionError
from ocibuild.platforms import Platform, host_platform


def platform_args(target: Platform | None = None) -> dict[str, str]:
    """BuildKit's predefined platform ARGs: TARGET* for the platform being built (this
    machine's by default), BUILD* for this machine. Global scope: usable in FROM and in
    global ARG defaults without a declaration; a stage sees one after ``ARG NAME``."""
    host = host_platform()
    return {**(target or host).args("TARGET"), **host.args("BUILD")}


# this machine's platform as the target (a plan built without --platform)
PLATFORM_ARGS: Mapping[str, str] = platform_args()

# Usable in RUN without being declared, and kept out of the history (as BuildKit does).
PROXY_ARGS = frozenset(
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
)


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: str  # the FROM word after expansion with the global ARGs
    base_stage: int | None  # set when FROM names an earlier stage
    from_: From
    instructions: tuple[Instruction, ...]

    @property
    def label(self) -> str:
        return self.name if self.name is not None else str(self.index)


@dataclass(frozen=True)
class Plan:
    stages: tuple[Stage, ...]
    global_args: Mapping[str, str | None]  # after --build-arg; None = declared, no value
    order: tuple[int, ...]  # stages to build, dependencies first
    target: int
    escape: str
    warnings: tuple[str, ...] = ()  # for the build's output (e.g. duplicate stage names)
    platform_args: Mapping[str, str] = field(default_factory=lambda: dict(PLATFORM_ARGS))
    # The stage graph, computed once: the earlier stages each stage reads from (FROM,
    # COPY --from, RUN --mount=from=). ``order`` and the parallel scheduler both use it.
    deps: Mapping[int, frozenset[int]] = field(default_factory=dict)

    def stage_ref(self, ref: str, before: int) -> int | None:
        """The index of the stage ``ref`` names (name or number), if it is an earlier one."""
        return _find_stage(self.stages[:before], ref)


def _find_stage(stages: tuple[Stage, ...] | list[Stage], ref: str) -> int | None:
    """The stage ``ref`` names among ``stages``: by name the last one of that name (stage
    names may repeat: BuildKit v0.11.6 builds such a file and a later stage of the same
    name replaces the earlier one), else by number."""
    low = ref.lower()
    for stage in reversed(stages):
        if stage.name is not None and stage.name == low:
            return stage.index
    if ref.isdigit() and int(ref) < len(stages):
        return int(ref)
    return None


def _expand(instr: Instruction, word: str, env: Mapping[str, str], escape: str) -> str:
    try:
        return expand_word(word, env, escape)
    except ExpansionError as exc:
        raise DockerfileError(
            exc.message, pos=instr.pos, source=instr.original, instruction=instr.keyword
        ) from None


def global_arg_values(
    df: Dockerfile,
    build_args: Mapping[str, str],
    predefined: Mapping[str, str] = PLATFORM_ARGS,
) -> tuple[dict[str, str | None], tuple[Instruction, ...]]:
    """Values of the ARGs declared before the first FROM, and the instructions after them."""
    values: dict[str, str | None] = {}
    index = 0
    instrs = df.instructions
    while index < len(instrs) and isinstance(instrs[index], Arg):
        arg = instrs[index]
        assert isinstance(arg, Arg)
        for name, default in arg.args:
            if name in build_args:
                values[name] = build_args[name]
            elif default is not None:
                env = {**predefined, **{k: v for k, v in values.items() if v is not None}}
                values[name] = _expand(arg, default, env, df.escape)
            else:
                values[name] = None
        index += 1
    return values, instrs[index:]


def make_plan(
    df: Dockerfile,
    build_args: Mapping[str, str],
    target: str | None = None,
    platform: Platform | None = None,
) -> Plan:
    """``platform``: the target platform (TARGETPLATFORM...); this machine's by default."""
    predefined = platform_args(platform)
    # BuildKit: a --build-arg of a predefined name overrides it in global scope (global ARG
    # defaults, FROM); the target platform itself stays
    overridden = {k: build_args.get(k, v) for k, v in predefined.items()}
    global_args, rest = global_arg_values(df, build_args, overridden)
    from_env = {**overridden, **{k: v for k, v in global_args.items() if v is not None}}
    stages: list[Stage] = []
    current: From | None = None
    body: list[Instruction] = []

    def close() -> None:
        if current is None:
            return
        base = _expand(current, current.image, from_env, df.escape)
        if not base:
            raise DockerfileError(
                "base name should not be blank",
                pos=current.pos,
                source=current.original,
                instruction="FROM",
                hint=f"the word {current.image!r} expanded to nothing; set the ARG or give a name",
            )
        stages.append(
            Stage(
                index=len(stages),
                name=current.stage_name,
                base=base,
                base_stage=_find_stage(stages, base) if "/" not in base else None,
                from_=current,
                instructions=tuple(body),
            )
        )

    for instr in rest:
        if isinstance(instr, From):
            close()
            current, body = instr, []
        elif current is None:
            raise DockerfileError(
                f"{instr.keyword} must come after FROM",
                pos=instr.pos,
                source=instr.original,
                instruction=instr.keyword,
                hint="only ARG may appear before the first FROM",
            )
        else:
            body.append(instr)
    close()
    if not stages:
        raise DockerfileError(
            "the Dockerfile has no FROM instruction",
            pos=None,
            hint="start every stage with FROM (FROM scratch for an empty base)",
        )
    warnings = _check_names(stages)
    _check_from_refs(stages, df.escape)
    if target is None:
        target_index = len(stages) - 1
    else:
        found = _find_stage(stages, target)
        if found is None:
            names = ", ".join(s.name for s in stages if s.name) or "none"
            raise DockerfileError(
                f"target stage {target!r} could not be found",
                hint=f"stages with names: {names}",
            )
        target_index = found
    deps = {s.index: frozenset(_dependencies(stages, s)) for s in stages}
    order = _needed(deps, target_index)
    return Plan(
        tuple(stages), global_args, order, target_index, df.escape, warnings, predefined, deps
    )


def _check_names(stages: list[Stage]) -> tuple[str, ...]:
    """Warnings for repeated stage names (current BuildKit's DuplicateStageName check)."""
    seen: dict[str, Stage] = {}
    warnings: list[str] = []
    for stage in stages:
        if stage.name is None:
            continue
        if stage.name in seen:
            warnings.append(
                f"{stage.from_.pos}: Duplicate stage name {go_quote(stage.name)}, stage names "
                f"should be unique (first at line {seen[stage.name].from_.pos.line}; "
                "FROM, COPY --from and --target use the last one defined before them)"
            )
        seen.setdefault(stage.name, stage)
    return tuple(warnings)


COPY_FROM_EXPANSION = (
    "variable expansion is not supported for --from, define a new stage with FROM using "
    "ARG from global scope as a workaround"
)
MOUNT_FROM_EXPANSION = "'from' doesn't support variable expansion, define alias stage instead"
_MOUNT_VARIABLE = re.compile(r"\$.")


def _check_from_refs(stages: list[Stage], escape: str) -> None:
    """``COPY --from`` and ``RUN --mount=from=`` are never expanded: a word that would
    change under expansion is refused, in every stage, as BuildKit does."""
    for stage in stages:
        for instr in stage.instructions:
            if isinstance(instr, Copy):
                ref = instr.from_
                if ref is not None and _expand(instr, ref, {}, escape) != ref:
                    raise DockerfileError(
                        COPY_FROM_EXPANSION,
                        pos=instr.pos,
                        source=instr.original,
                        instruction=instr.keyword,
                        hint=f"e.g. ARG SRC=stage-name, FROM ${{SRC}} AS src (before this "
                        f"stage), then {instr.keyword} --from=src",
                    )
            elif isinstance(instr, Run):
                for ref in mount_from_refs(instr):
                    if _MOUNT_VARIABLE.search(ref):
                        raise DockerfileError(
                            MOUNT_FROM_EXPANSION,
                            pos=instr.pos,
                            source=instr.original,
                            instruction="RUN",
                            hint="e.g. ARG SRC=stage-name, FROM ${SRC} AS src (before this "
                            "stage), then RUN --mount=from=src,...",
                        )


def _dependencies(stages: list[Stage], stage: Stage) -> set[int]:
    """The earlier stages ``stage`` needs: its FROM, COPY --from, RUN --mount=from, and
    those of the ONBUILD triggers of a base stage, which run in ``stage`` (current
    BuildKit, 4cf7a1a0d: ``ONBUILD COPY --from=NAME`` names a stage of the child)."""
    deps: set[int] = set()
    body = list(stage.instructions)
    if stage.base_stage is not None:
        deps.add(stage.base_stage)
        base = stages[stage.base_stage].instructions
        body += [i.trigger for i in base if isinstance(i, Onbuild) and i.trigger is not None]
    for instr in body:
        refs: list[str] = []
        if isinstance(instr, Copy):
            if instr.from_ is not None:
                refs.append(instr.from_)
        elif isinstance(instr, Run):
            refs += mount_from_refs(instr)
        for ref in refs:
            found = _find_stage(list(stages[: stage.index]), ref)
            if found is not None:
                deps.add(found)
    return deps


def mount_from_refs(instr: Run) -> list[str]:
    """The ``from=`` of each RUN --mount (stages a RUN reads from)."""
    return [ref for mount in instr.mounts for ref in mount.from_refs]


def _needed(deps: Mapping[int, frozenset[int]], target: int) -> tuple[int, ...]:
    needed: set[int] = set()
    todo = [target]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        todo.extend(deps[index])
    return tuple(sorted(needed))


def platform_value(
    instr: Instruction,
    word: str,
    global_args: Mapping[str, str | None],
    predefined: Mapping[str, str] = PLATFORM_ARGS,
) -> str:
    """FROM --platform expanded like the image word: global ARGs and platform ARGs."""
    env = {**predefined, **{k: v for k, v in global_args.items() if v is not None}}
    return _expand(instr, word, env, "\\")
