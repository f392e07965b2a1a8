"""Dockerfile text → typed instructions (BuildKit's parser + instructions packages).

``parse`` lexes the text (``lexer``), turns each logical line into BuildKit's node form
(``words.parse_node``) and builds the frozen dataclasses of ``instructions``. Words stay
unexpanded; errors carry the position, the source line(s), the instruction and a hint.
``to_json`` and ``dump_buildkit`` serve ``ocibuild parse``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ocibuild import _record
from ocibuild.dockerfile.expand import go_quote
from ocibuild.dockerfile.instructions import (
    FLAG_FIELDS,
    Arg,
    Cmd,
    Command,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    Flag,
    From,
    Healthcheck,
    Heredoc,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from ocibuild.dockerfile.lexer import (
    LogicalLine,
    RawHeredoc,
    iter_logical,
    parse_directives,
    parse_heredoc,
    split_lines,
    strip_eol,
)
from ocibuild.dockerfile.mounts import parse_mount_flag
from ocibuild.dockerfile.words import Node, go_trim, parse_node
from ocibuild.errors import DockerfileError, Position, closest

KEYWORDS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
)  # fmt: skip

_STR, _STRS, _BOOL = "string", "strings", "bool"
FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": _STR},
    "RUN": {"mount": _STRS, "network": _STR, "security": _STR},
    "COPY": {"from": _STR, "chown": _STR, "chmod": _STR, "link": _BOOL, "parents": _BOOL,
             "exclude": _STRS},
    "ADD": {"chown": _STR, "chmod": _STR, "link": _BOOL, "keep-git-dir": _BOOL,
            "checksum": _STR, "exclude": _STRS, "parents": _BOOL, "unpack": _BOOL},
    "HEALTHCHECK": {"interval": _STR, "timeout": _STR, "start-period": _STR,
                    "start-interval": _STR, "retries": _STR},
}  # fmt: skip
_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")
_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)


class _Base(tuple[Position, str, str, tuple[Flag, ...]]):
    """(pos, keyword, original, flags), unpacked into every instruction (``*b``). A
    tuple with properties, not a NamedTuple: that one compiles its methods at import."""

    __slots__ = ()

    def __new__(cls, pos: Position, keyword: str, original: str, flags: tuple[Flag, ...]) -> _Base:
        return tuple.__new__(cls, (pos, keyword, original, flags))

    @property
    def pos(self) -> Position:
        return self[0]

    @property
    def keyword(self) -> str:
        return self[1]

    @property
    def original(self) -> str:
        return self[2]

    @property
    def flags(self) -> tuple[Flag, ...]:
        return self[3]


_Builder = Callable[[Node, _Base, tuple[RawHeredoc, ...]], Instruction]


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile. Raises DockerfileError at the first problem, in file order."""
    physical = split_lines(text)
    lines = tuple(strip_eol(x) for x in physical)
    directives, escape = parse_directives(physical, name)
    out: list[Instruction] = []
    in_stage = False
    for ll in iter_logical(physical, escape, name):
        inst = _build_located(ll, name, lines, escape)
        if not in_stage and not isinstance(inst, From | Arg):
            raise DockerfileError(
                "no build stage in current context",
                pos=inst.pos,
                source=_excerpt(lines, ll),
                instruction=inst.keyword,
                hint="a Dockerfile starts with FROM; only ARG may come before the first FROM",
            )
        in_stage = in_stage or isinstance(inst, From)
        out.append(inst)
    if not out:
        last = max(len(lines), 1)
        raise DockerfileError(
            "file with no instructions",
            pos=Position(name, last, last),
            source=lines[-1] if lines else "",
            hint="a Dockerfile needs at least a FROM instruction, e.g. FROM alpine",
        )
    if not in_stage:
        raise DockerfileError(
            "dockerfile contains no stages to build",
            pos=out[-1].pos,
            source=out[-1].original,
            instruction=out[-1].keyword,
            hint="add a FROM instruction after the ARGs",
        )
    return Dockerfile(name, tuple(out), directives, escape, lines)


def _excerpt(lines: tuple[str, ...], ll: LogicalLine) -> str:
    return "\n".join(lines[ll.start_line - 1 : max(ll.text_end_line, ll.start_line)])


def _build_located(ll: LogicalLine, name: str, lines: tuple[str, ...], escape: str) -> Instruction:
    pos = Position(name, ll.start_line, ll.end_line)
    keyword = ll.text.split(maxsplit=1)[0].upper() if ll.text.split() else ""
    try:
        return _build(parse_node(ll.text, escape), pos, ll.heredocs)
    except DockerfileError as e:
        if e.pos is not None:
            raise
        raise DockerfileError(
            e.message,
            pos=pos,
            source=_excerpt(lines, ll),
            instruction=keyword if keyword in KEYWORDS else None,
            hint=e.hint,
        ) from None


def _build(node: Node, pos: Position, heredocs: tuple[RawHeredoc, ...]) -> Instruction:
    keyword = node.value.upper()
    builder = _BUILDERS.get(keyword)
    if builder is None:
        close = closest(keyword, KEYWORDS)
        hint = f"did you mean {close}?" if close else "known: " + ", ".join(KEYWORDS)
        raise DockerfileError(f"unknown instruction: {node.value}", hint=hint)
    flags = tuple(_flag(f) for f in node.flags)
    if keyword not in ("STOPSIGNAL", "HEALTHCHECK"):  # BuildKit checks these two itself
        check_flags(keyword, node.flags)
    return builder(node, _Base(pos, keyword, node.original, flags), heredocs)


def _flag(raw: str) -> Flag:
    name, eq, value = raw[2:].partition("=")
    return Flag(name, value if eq else None)


def check_flags(keyword: str, raw_flags: list[str]) -> None:
    """BuildKit's BFlags.Parse: known names, values where required, no repeats."""
    spec = FLAGS.get(keyword, {})
    used: set[str] = set()
    for raw in raw_flags:
        name, eq, value = raw[2:].partition("=")
        kind = spec.get(name)
        if kind is None:
            close = closest(name, list(spec))
            if close:
                hint = f"did you mean --{close}?"
            elif spec:
                hint = f"{keyword} accepts " + ", ".join(f"--{k}" for k in spec)
            else:
                hint = f"{keyword} takes no flags"
            raise DockerfileError(f"unknown flag: {name}", hint=hint)
        if name in used and kind != _STRS:
            raise DockerfileError(f"duplicate flag specified: {name}")
        used.add(name)
        if kind == _BOOL:
            if eq and not value:
                raise DockerfileError(f"missing a value on flag: {name}")
            if value.lower() not in ("", "true", "false"):
                raise DockerfileError(f"expecting boolean value for flag {name}, not: {value}")
        elif not eq:
            raise DockerfileError(f"missing a value on flag: {name}", hint=f"use --{name}=VALUE")


def _value(b: _Base, name: str) -> str | None:
    """The last ``--name=value`` (None when absent; "" for a bare ``--name``)."""
    found = None
    for f in b.flags:
        if f.name == name:
            found = f.value or ""
    return found


def _values(b: _Base, name: str) -> tuple[str, ...]:
    """Every value of a repeatable flag (``--mount``, ``--exclude``), in order."""
    return tuple(f.value or "" for f in b.flags if f.name == name)


def _bool(b: _Base, name: str) -> bool | None:
    """A boolean flag (checked by :func:`check_flags`): None when absent."""
    value = _value(b, name)
    return None if value is None else (value or "true").lower() == "true"


def _command(node: Node, args: list[str]) -> Command:
    if node.json:
        return Command(tuple(args), True)
    return Command((args[0],) if args else (), False)


def _heredocs(raw: tuple[RawHeredoc, ...]) -> tuple[Heredoc, ...]:
    return tuple(Heredoc(h.name, h.chomped(), h.expand, h.chomp) for h in raw)


def _at_least_one(b: _Base, args: list[str]) -> None:
    if not args:
        raise DockerfileError(f"{b.keyword} requires at least one argument")


def _exactly_one(b: _Base, args: list[str]) -> str:
    if len(args) != 1:
        raise DockerfileError(f"{b.keyword} requires exactly one argument")
    return args[0]


def _from(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    args = node.args
    stage: str | None = None
    if len(args) == 3 and args[1].lower() == "as":
        stage = args[2].lower()
        if not _STAGE_NAME.fullmatch(stage):
            raise DockerfileError(
                f"invalid name for build stage: {go_quote(args[2])}, "
                "name can't start with a number or contain symbols",
                hint="stage names start with a letter; then letters, digits, '-', '_', '.'",
            )
    elif len(args) != 1:
        raise DockerfileError(
            "FROM requires either one or three arguments", hint="use FROM image [AS name]"
        )
    return From(*b, image=args[0], stage_name=stage, platform=_value(b, "platform"))


def _run(node: Node, b: _Base, h: tuple[RawHeredoc, ...]) -> Instruction:
    # A bare RUN is BuildKit's `/bin/sh -c ""` (it builds: a no-op step with an empty
    # layer); `RUN []` has no command at all (BuildKit fails: "arguments are required").
    if node.json and not node.args:
        raise DockerfileError(
            "RUN [] has no command (arguments are required)",
            hint='give the command, e.g. RUN ["/bin/true"], or write it in shell form',
        )
    return Run(
        *b,
        command=_command(node, node.args),
        heredocs=_heredocs(h),
        mounts=tuple(parse_mount_flag(v) for v in _values(b, "mount")),
        network=_value(b, "network"),
        security=_value(b, "security"),
    )


def _cmd(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    return Cmd(*b, command=_command(node, node.args))


def _entrypoint(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    return Entrypoint(*b, command=_command(node, node.args))


def _copy(node: Node, b: _Base, h: tuple[RawHeredoc, ...]) -> Instruction:
    if len(node.args) < 2:
        raise DockerfileError(
            f"{b.keyword} requires at least two arguments, but only one was provided. "
            "Destination could not be determined",
            hint=f"give the source(s) and then the destination: {b.keyword} src /dest",
        )
    try:
        dest_is_heredoc = parse_heredoc(node.args[-1]) is not None
    except DockerfileError:
        dest_is_heredoc = False
    if dest_is_heredoc:
        raise DockerfileError(f"{b.keyword} cannot accept a heredoc as a destination")
    return Copy(
        *b,
        sources=tuple(node.args[:-1]),
        dest=node.args[-1],
        heredocs=_heredocs(h),
        json_form=node.json,
        from_=_value(b, "from"),
        chown=_value(b, "chown"),
        chmod=_value(b, "chmod"),
        link=bool(_bool(b, "link")),
        parents=bool(_bool(b, "parents")),
        exclude=_values(b, "exclude"),
        checksum=_value(b, "checksum"),
        keep_git_dir=bool(_bool(b, "keep-git-dir")),
        unpack=_bool(b, "unpack"),
    )


def _pairs(node: Node, b: _Base) -> tuple[tuple[str, str], ...]:
    _at_least_one(b, node.args)
    a = node.args
    pairs = tuple((a[i], a[i + 1]) for i in range(0, len(a) - 1, 2))
    if any(not k for k, _ in pairs):
        raise DockerfileError(f"{b.keyword} names can not be blank")
    return pairs


def _env(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    return Env(*b, pairs=_pairs(node, b))


def _label(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    return Label(*b, pairs=_pairs(node, b))


def _arg(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    _at_least_one(b, node.args)
    out: list[tuple[str, str | None]] = []
    for word in node.args:
        key, eq, value = word.partition("=")
        if eq and not key:
            raise DockerfileError("ARG names can not be blank")
        out.append((key, value if eq else None))
    return Arg(*b, args=tuple(out))


def _workdir(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    return Workdir(*b, path=_exactly_one(b, node.args))


def _user(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    return User(*b, user=_exactly_one(b, node.args))


def _maintainer(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    return Maintainer(*b, name=_exactly_one(b, node.args))


def _stopsignal(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    return StopSignal(*b, signal=_exactly_one(b, node.args))


def _expose(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    _at_least_one(b, node.args)
    return Expose(*b, ports=tuple(node.args))


def _volume(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    _at_least_one(b, node.args)
    paths = tuple(go_trim(v) for v in node.args)
    if not all(paths):
        raise DockerfileError("VOLUME specified can not be an empty string")
    return Volume(*b, paths=paths, json_form=node.json)


def _shell(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    _at_least_one(b, node.args)
    if not node.json:
        raise DockerfileError(
            "SHELL requires the arguments to be in JSON form",
            hint='write it as a JSON array, e.g. SHELL ["/bin/sh", "-c"]',
        )
    return Shell(*b, args=tuple(node.args))


def _healthcheck(node: Node, b: _Base, _h: tuple[RawHeredoc, ...]) -> Instruction:
    _at_least_one(b, node.args)
    kind, rest = node.args[0].upper(), node.args[1:]
    if kind == "NONE":
        if rest:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(*b, command=None)
    check_flags("HEALTHCHECK", node.flags)
    if kind != "CMD":
        raise DockerfileError(
            f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)",
            hint="use HEALTHCHECK [options] CMD command, or HEALTHCHECK NONE",
        )
    if not rest:
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    for f in b.flags:
        if f.name == "retries":
            _check_retries(f.value or "")
        elif f.value:
            _check_interval(f.name, f.value)
    health = tuple((f.name, f.value or "") for f in b.flags)
    return Healthcheck(*b, command=_command(node, rest), health=health)


def _onbuild(node: Node, b: _Base, h: tuple[RawHeredoc, ...]) -> Instruction:
    child = node.child
    if child is None:
        raise DockerfileError("ONBUILD requires at least one argument")
    trigger = child.value.upper()
    if trigger == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger")
    nested = _build(child, b.pos, h)
    text = _ONBUILD_PREFIX.sub("", b.original, count=1)
    for doc in h:
        text += "\n" + doc.content + doc.name
    return Onbuild(*b, trigger=nested, trigger_text=text)


_BUILDERS: dict[str, _Builder] = {
    "ADD": _copy,
    "ARG": _arg,
    "CMD": _cmd,
    "COPY": _copy,
    "ENTRYPOINT": _entrypoint,
    "ENV": _env,
    "EXPOSE": _expose,
    "FROM": _from,
    "HEALTHCHECK": _healthcheck,
    "LABEL": _label,
    "MAINTAINER": _maintainer,
    "ONBUILD": _onbuild,
    "RUN": _run,
    "SHELL": _shell,
    "STOPSIGNAL": _stopsignal,
    "USER": _user,
    "VOLUME": _volume,
    "WORKDIR": _workdir,
}

# -- HEALTHCHECK option values (Go's time.ParseDuration / strconv.ParseInt) --------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_UNITS["h"] = 3600.0
_NUMBER = re.compile(r"[0-9]*(\.[0-9]*)?")


def go_duration(text: str) -> float:
    """Seconds in a Go duration ("1m30s", "250ms"); ValueError with Go's message."""
    quoted = go_quote(text)
    s = text
    sign = -1.0 if s[:1] == "-" else 1.0
    s = s[1:] if s[:1] in ("-", "+") else s
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    while s:
        m = _NUMBER.match(s)
        number = m.group(0) if m else ""
        if number in ("", "."):
            raise ValueError(f"time: invalid duration {quoted}")
        s = s[len(number) :]
        unit = re.match(r"[^0-9.]*", s)
        unit_text = unit.group(0) if unit else ""
        if not unit_text:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit_text not in _UNITS:
            raise ValueError(f"time: unknown unit {go_quote(unit_text)} in duration {quoted}")
        s = s[len(unit_text) :]
        total += float(number) * _UNITS[unit_text]
    return sign * total


def _check_interval(name: str, value: str) -> None:
    try:
        seconds = go_duration(value)
    except ValueError as e:
        hint = f"--{name} takes a duration such as 30s or 1m30s"
        raise DockerfileError(str(e), hint=hint) from None
    if seconds != 0 and seconds < 1e-3:
        raise DockerfileError(f"Interval {go_quote(name)} cannot be less than 1ms")


def _check_retries(value: str) -> None:
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise DockerfileError(f"strconv.ParseInt: parsing {go_quote(value)}: invalid syntax")
    number = int(value)
    if not -(2**31) <= number < 2**31:
        raise DockerfileError(f"strconv.ParseInt: parsing {go_quote(value)}: value out of range")
    if number < 0:
        raise DockerfileError(f"--retries cannot be negative ({number})")


# -- output for `ocibuild parse` ---------------------------------------------------------


def to_json(df: Dockerfile) -> list[dict[str, object]]:
    """The instructions as JSON-able dicts: keyword, line, end_line, original, flags and
    the typed fields."""
    return [_instruction_json(i) for i in df.instructions]


def _instruction_json(inst: Instruction) -> dict[str, object]:
    out: dict[str, object] = {
        "keyword": inst.keyword,
        "line": inst.pos.line,
        "end_line": inst.pos.end_line,
        "original": inst.original,
        "flags": [{"name": f.name, "value": f.value} for f in inst.flags],
    }
    for f in _record.fields(inst):
        if f.name not in out and f.name != "pos" and f.name not in FLAG_FIELDS:
            out[f.name] = _value_json(getattr(inst, f.name))
    return out


def _value_json(value: object) -> object:
    if isinstance(value, Instruction):
        return _instruction_json(value)
    if isinstance(value, Command | Heredoc):
        return {f.name: _value_json(getattr(value, f.name)) for f in _record.fields(value)}
    if isinstance(value, tuple | list):
        return [_value_json(v) for v in value]
    return value


def parse_ast(text: str, name: str = "Dockerfile") -> list[Node]:
    """BuildKit's ``parser.Parse`` alone: directives, logical lines, heredocs and each
    line's node, with no instruction validation (unknown instructions and flags, missing
    arguments, instructions before FROM all pass, as they do in BuildKit's parser).

    Raises DockerfileError only where ``parser.Parse`` fails: a malformed directive, an
    unterminated heredoc, ENV/LABEL without ``=`` or a value, a JSON array holding a
    non-string, a file with no instructions.
    """
    physical = split_lines(text)
    lines = tuple(strip_eol(x) for x in physical)
    _, escape = parse_directives(physical, name)
    nodes: list[Node] = []
    for ll in iter_logical(physical, escape, name):
        try:
            nodes.append(parse_node(ll.text, escape))
        except DockerfileError as e:
            keyword = ll.text.split(maxsplit=1)[0].upper() if ll.text.split() else ""
            raise DockerfileError(
                e.message,
                pos=Position(name, ll.start_line, ll.end_line),
                source=_excerpt(lines, ll),
                instruction=keyword if keyword in KEYWORDS else None,
                hint=e.hint,
            ) from None
    if not nodes:
        last = max(len(lines), 1)
        raise DockerfileError(
            "file with no instructions",
            pos=Position(name, last, last),
            source=lines[-1] if lines else "",
            hint="a Dockerfile needs at least a FROM instruction, e.g. FROM alpine",
        )
    return nodes


def dump_buildkit(text: str, name: str = "Dockerfile") -> str:
    """BuildKit's ``parser.Parse(...).AST.Dump()`` plus a newline, the form of the
    ``result`` files of its parser tests: one ``(keyword ["--flag"] "arg" ...)`` line per
    instruction. Only the parser's errors apply (see :func:`parse_ast`)."""
    return "".join(f"({node.dump()})\n" for node in parse_ast(text, name))


def parse_trigger(text: str, pos: Position, escape: str = "\\") -> tuple[Instruction, ...]:
    """The instruction(s) of an ONBUILD trigger from a base image's config (``OnBuild``),
    placed at ``pos`` (the FROM that pulled the base in) for error messages."""
    physical = split_lines(text)
    lines = tuple(strip_eol(x) for x in physical)
    out: list[Instruction] = []
    for ll in iter_logical(physical, escape, pos.file):
        inst = _build_located(ll, pos.file, lines, escape)
        if inst.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(
                f"{inst.keyword} isn't allowed as an ONBUILD trigger",
                pos=pos,
                source=text,
                instruction="ONBUILD",
                hint="the base image's OnBuild config is malformed",
            )
        out.append(_record.replace(inst, pos=pos))
    return tuple(out)
