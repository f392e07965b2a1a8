"""The one expansion pass: an instruction's words with the step's ARG/ENV values.

BuildKit expands an instruction's words once, at dispatch, with the environment before
the step (``instructions.SupportsSingleWordExpansion``); so does :func:`expand_instruction`
and the builder plans from its result. What is *not* expanded, as in BuildKit: commands
(RUN/CMD/ENTRYPOINT/HEALTHCHECK CMD: the shell does that), SHELL, ONBUILD triggers,
heredoc words and bodies (a body is expanded when it is written, by the step),
``COPY --from`` (a stage or image name; the plan refuses variables there) and FROM (the
planner expands it with the global ARGs). Pure: the caller passes the expansion functions
(they raise its positioned errors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ocibuild import _record
from ocibuild.dockerfile.instructions import (
    Arg,
    Copy,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Run,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from ocibuild.dockerfile.lexer import parse_heredoc
from ocibuild.dockerfile.mounts import MountFlag
from ocibuild.errors import DockerfileError

I = TypeVar("I", bound=Instruction)  # noqa: E741
Word = Callable[[str], str]  # one word -> its value (quotes removed, $vars replaced)
Words = Callable[[str], list[str]]  # one word -> the words it splits into


def expand_instruction(instr: I, word: Word, words: Words) -> I:
    """``instr`` with every expandable word replaced by its value (same type)."""
    out: Instruction
    match instr:
        case Env() | Label():
            out = _record.replace(instr, pairs=tuple((word(k), word(v)) for k, v in instr.pairs))
        case Arg():
            args = tuple((n, None if d is None else word(d)) for n, d in instr.args)
            out = _record.replace(instr, args=args)
        case Workdir():
            out = _record.replace(instr, path=word(instr.path))
        case User():
            out = _record.replace(instr, user=word(instr.user))
        case StopSignal():
            out = _record.replace(instr, signal=word(instr.signal))
        case Maintainer():
            out = _record.replace(instr, name=word(instr.name))
        case Expose():
            out = _record.replace(instr, ports=tuple(w for p in instr.ports for w in words(p)))
        case Volume():
            paths = (
                tuple(word(p) for p in instr.paths)
                if instr.json_form
                else tuple(w for p in instr.paths for w in words(p))
            )
            out = _record.replace(instr, paths=paths)
        case Healthcheck():
            out = _record.replace(instr, health=tuple((n, word(v)) for n, v in instr.health))
        case Run() if instr.network is None and instr.security is None and not instr.mounts:
            out = instr  # nothing to expand (the command is the shell's)
        case Run():
            out = _record.replace(
                instr,
                network=None if instr.network is None else word(instr.network),
                security=None if instr.security is None else word(instr.security),
                mounts=tuple(_mount(m, word) for m in instr.mounts),
            )
        case Copy():
            out = _copy(instr, word)
        case _:
            out = instr
    assert type(out) is type(instr)
    return out


def _optional(value: str | None, word: Word) -> str | None:
    return None if value is None else word(value)


def _copy(instr: Copy, word: Word) -> Copy:
    docs = len(instr.heredocs)
    sources = []
    for raw in instr.sources:
        if docs and _is_heredoc_word(raw):  # a heredoc's name: its body is the source
            docs -= 1
            sources.append(raw)
        else:
            sources.append(word(raw))
    return _record.replace(
        instr,
        sources=tuple(sources),
        dest=word(instr.dest),
        chown=_optional(instr.chown, word),
        chmod=_optional(instr.chmod, word),
        exclude=tuple(word(e) for e in instr.exclude),
        checksum=_optional(instr.checksum, word),
    )


def _mount(flag: MountFlag, word: Word) -> MountFlag:
    fields = tuple((k, None if v is None else word(v)) for k, v in flag.fields)
    return _record.replace(flag, fields=fields)


def _is_heredoc_word(word: str) -> bool:
    try:
        return parse_heredoc(word) is not None
    except DockerfileError:
        return False
