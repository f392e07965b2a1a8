"""Instructions + build args -> stages and the order to build them in. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ocibuild.dockerfile.expand import expand_word
from ocibuild.dockerfile.instructions import Arg, Copy, Dockerfile, From, Instruction, Run
from ocibuild.errors import DockerfileError, ExpansionError

PLATFORM_ARGS: Mapping[str, str] = {
    "TARGETPLATFORM": "linux/amd64",
    "TARGETOS": "linux",
    "TARGETARCH": "amd64",
    "TARGETVARIANT": "",
    "BUILDPLATFORM": "linux/amd64",
    "BUILDOS": "linux",
    "BUILDARCH": "amd64",
    "BUILDVARIANT": "",
}

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

    def stage_ref(self, ref: str, before: int) -> int | None:
        """The index of the stage ``ref`` names (name or number), if it is an earlier one."""
        return _find_stage(self.stages[:before], ref)


def _find_stage(stages: tuple[Stage, ...] | list[Stage], ref: str) -> int | None:
    low = ref.lower()
    for stage in stages:
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
    df: Dockerfile, build_args: Mapping[str, str]
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
                env = {**PLATFORM_ARGS, **{k: v for k, v in values.items() if v is not None}}
                values[name] = _expand(arg, default, env, df.escape)
            else:
                values[name] = None
        index += 1
    return values, instrs[index:]


def make_plan(df: Dockerfile, build_args: Mapping[str, str], target: str | None = None) -> Plan:
    global_args, rest = global_arg_values(df, build_args)
    from_env = {**PLATFORM_ARGS, **{k: v for k, v in global_args.items() if v is not None}}
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
    _check_names(stages)
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
    order = _needed(stages, target_index, from_env, df.escape)
    return Plan(tuple(stages), global_args, order, target_index, df.escape)


def _check_names(stages: list[Stage]) -> None:
    seen: dict[str, Stage] = {}
    for stage in stages:
        if stage.name is None:
            continue
        if stage.name in seen:
            raise DockerfileError(
                f"duplicate stage name {stage.name!r}",
                pos=stage.from_.pos,
                source=stage.from_.original,
                instruction="FROM",
                hint=f"first used at {seen[stage.name].from_.pos}; stage names must be unique",
            )
        seen[stage.name] = stage


def copy_from_ref(instr: Copy, env: Mapping[str, str], escape: str) -> str | None:
    flag = instr.flag("from")
    if flag is None or flag.value is None:
        return None
    return _expand(instr, flag.value, env, escape)


def stage_dependencies(
    stages: list[Stage] | tuple[Stage, ...], stage: Stage, env: Mapping[str, str], escape: str
) -> set[int]:
    deps: set[int] = set()
    if stage.base_stage is not None:
        deps.add(stage.base_stage)
    for instr in stage.instructions:
        refs: list[str] = []
        if isinstance(instr, Copy):
            ref = copy_from_ref(instr, env, escape)
            if ref is not None:
                refs.append(ref)
        elif isinstance(instr, Run):
            refs += [_expand(instr, r, env, escape) for r in mount_from_refs(instr)]
        for ref in refs:
            found = _find_stage(list(stages[: stage.index]), ref)
            if found is not None:
                deps.add(found)
    return deps


def mount_from_refs(instr: Run) -> list[str]:
    """The ``from=`` of each RUN --mount (stages a RUN reads from)."""
    out = []
    for value in instr.flag_values("mount"):
        for part in value.split(","):
            key, eq, val = part.partition("=")
            if eq and key.strip().lower() == "from" and val:
                out.append(val)
    return out


def _needed(
    stages: list[Stage], target: int, env: Mapping[str, str], escape: str
) -> tuple[int, ...]:
    needed: set[int] = set()
    todo = [target]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        todo.extend(stage_dependencies(stages, stages[index], env, escape))
    return tuple(sorted(needed))


def platform_value(instr: Instruction, word: str, global_args: Mapping[str, str | None]) -> str:
    """FROM --platform expanded like the image word: global ARGs and platform ARGs."""
    env = {**PLATFORM_ARGS, **{k: v for k, v in global_args.items() if v is not None}}
    return _expand(instr, word, env, "\\")
