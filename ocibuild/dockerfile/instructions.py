"""Typed Dockerfile instructions: what the parser produces and the planner consumes.

Words are kept *unexpanded* (quotes and ``$var`` intact, as written, continuation
already joined): BuildKit expands at dispatch time with the ARG/ENV values in scope,
so expansion belongs to the executor (``dockerfile.expand``), not to the parser.
Every instruction carries its position and its original text (the logical line, used
for history ``created_by`` and in error messages).
"""

from __future__ import annotations

from ocibuild._record import dataclass, field
from ocibuild.dockerfile.mounts import MountFlag
from ocibuild.errors import Position

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
