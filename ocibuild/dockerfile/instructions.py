"""Typed Dockerfile instructions: what the parser produces and the planner consumes.

Words are kept *unexpanded* (quotes and ``$var`` intact, as written, continuation
already joined): BuildKit expands at dispatch time with the ARG/ENV values in scope,
so expansion belongs to the executor (``dockerfile.expand``), not to the parser.
Every instruction carries its position and its original text (the logical line, used
for history ``created_by`` and in error messages).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import field
from typing import TYPE_CHECKING, Any, TypeVar

from ocibuild.dockerfile.mounts import MountFlag
from ocibuild.errors import Position

_T = TypeVar("_T")

if TYPE_CHECKING:
    from dataclasses import dataclass
else:

    def dataclass(*, frozen: bool) -> Callable[[type[_T]], type[_T]]:
        """``dataclasses.dataclass(frozen=True)`` as seen from outside (fields, replace,
        ``__init__``, repr, equality, hash, no assignment after ``__init__``), at a
        fraction of its import cost: the dataclass machinery compiles six methods per
        class, and these 22 classes are imported by every build, fully cached ones too.
        Here it compiles ``__init__`` alone; the other methods are shared functions."""
        assert frozen
        return _frozen_record


def _frozen_record(cls: type[_T]) -> type[_T]:
    cls = dataclasses.dataclass(cls, repr=False, eq=False)  # only __init__ is compiled
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    cls._record_fields = names  # type: ignore[attr-defined]
    for name, method in _SHARED.items():
        setattr(cls, name, method)
    return cls


def _record_values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in self._record_fields)


def _record_setattr(self: Any, name: str, value: Any) -> None:
    # __init__ sets each field once; any other assignment is refused, as a frozen
    # dataclass refuses it
    if name not in self._record_fields or name in self.__dict__:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


def _record_delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _record_repr(self: Any) -> str:
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._record_fields)
    return f"{type(self).__qualname__}({inner})"


def _record_eq(self: Any, other: object) -> Any:  # bool, or NotImplemented
    if other.__class__ is self.__class__:
        return bool(_record_values(self) == _record_values(other))
    return NotImplemented


def _record_hash(self: Any) -> int:
    return hash(_record_values(self))


_SHARED: dict[str, Callable[..., Any]] = {
    "__setattr__": _record_setattr,
    "__delattr__": _record_delattr,
    "__repr__": _record_repr,
    "__eq__": _record_eq,
    "__hash__": _record_hash,
}

# Fields the parser fills from ``flags`` (typed, still unexpanded words): the raw
# ``flags`` stay the record of what was written (cache keys, ``ocibuild parse``), these
# are what the builder reads. Each flag has one typed field; see ``parser.FLAGS``.
FLAG_FIELDS = frozenset(
    {
        "platform", "mounts", "network", "security", "from_", "chown", "chmod", "link",
        "parents", "exclude", "checksum", "keep_git_dir", "unpack", "health",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Flag:
    """``--name=value`` before the arguments; ``value`` is None for a bare ``--name``."""

    name: str
    value: str | None


@dataclass(frozen=True)
class Heredoc:
    """A here-document attached to RUN/COPY/ADD (``<<EOF`` ... ``EOF``)."""

    name: str  # the delimiter word, unquoted
    content: str  # the body, each line ending in "\n"
    expand: bool  # False when the delimiter was quoted
    chomp: bool  # True for <<- (leading tabs stripped)


@dataclass(frozen=True)
class Command:
    """The command of RUN, CMD, ENTRYPOINT, HEALTHCHECK CMD.

    ``exec_form`` is True for the JSON form, whose ``args`` are final strings; in shell
    form ``args`` holds exactly one string, the raw shell text (never expanded by us:
    the shell does that).
    """

    args: tuple[str, ...]
    exec_form: bool


@dataclass(frozen=True)
class Instruction:
    pos: Position
    keyword: str  # upper case: "RUN", "COPY", ...
    original: str  # the logical line as written, continuations joined
    flags: tuple[Flag, ...] = ()

    def flag(self, name: str) -> Flag | None:
        """The last ``--name`` flag given, if any."""
        found = None
        for f in self.flags:
            if f.name == name:
                found = f
        return found

    def flag_values(self, name: str) -> list[str]:
        """All values of a repeatable flag (``--mount``, ``--exclude``)."""
        return [f.value or "" for f in self.flags if f.name == name]


@dataclass(frozen=True)
class From(Instruction):
    image: str = ""  # raw word; may reference global ARGs
    stage_name: str | None = None  # the name after AS, lower-cased as BuildKit does
    platform: str | None = None  # --platform, raw word (global and platform ARGs)


@dataclass(frozen=True)
class Run(Instruction):
    command: Command = Command((), False)
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[MountFlag, ...] = ()  # --mount, each split into its fields
    network: str | None = None  # --network, raw word
    security: str | None = None  # --security, raw word


@dataclass(frozen=True)
class Cmd(Instruction):
    command: Command = Command((), False)


@dataclass(frozen=True)
class Entrypoint(Instruction):
    command: Command = Command((), False)


@dataclass(frozen=True)
class Copy(Instruction):
    """COPY and ADD (keyword tells them apart). Sources and dest are raw words."""

    sources: tuple[str, ...] = ()
    dest: str = ""
    heredocs: tuple[Heredoc, ...] = ()
    json_form: bool = False
    from_: str | None = None  # --from: a stage, image or named context; never expanded
    chown: str | None = None  # raw words, expanded at dispatch
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    exclude: tuple[str, ...] = ()
    checksum: str | None = None  # ADD only (the parser refuses the others' flags)
    keep_git_dir: bool = False
    unpack: bool | None = None  # ADD --unpack: None when not given


@dataclass(frozen=True)
class Env(Instruction):
    """ENV k=v ... or legacy ENV k v; both keys and values are raw words."""

    pairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Label(Instruction):
    pairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Arg(Instruction):
    """ARG name[=default] ...; default is a raw word or None."""

    args: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class Workdir(Instruction):
    path: str = ""


@dataclass(frozen=True)
class User(Instruction):
    user: str = ""


@dataclass(frozen=True)
class Expose(Instruction):
    ports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Volume(Instruction):
    paths: tuple[str, ...] = ()
    json_form: bool = False


@dataclass(frozen=True)
class StopSignal(Instruction):
    signal: str = ""


@dataclass(frozen=True)
class Shell(Instruction):
    args: tuple[str, ...] = ()  # always JSON form


@dataclass(frozen=True)
class Maintainer(Instruction):
    name: str = ""


@dataclass(frozen=True)
class Healthcheck(Instruction):
    """HEALTHCHECK [--interval ...] CMD ... or HEALTHCHECK NONE (command is None)."""

    command: Command | None = None
    health: tuple[tuple[str, str], ...] = ()  # (--interval..., raw value), checked


@dataclass(frozen=True)
class Onbuild(Instruction):
    trigger: Instruction | None = None
    trigger_text: str = ""  # the nested instruction's text, as stored in the config


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile."""

    name: str  # display name used in positions, e.g. "Dockerfile"
    instructions: tuple[Instruction, ...]
    directives: dict[str, str] = field(default_factory=dict)  # lower-case keys
    escape: str = "\\"
    lines: tuple[str, ...] = ()  # the physical source lines, for error excerpts
