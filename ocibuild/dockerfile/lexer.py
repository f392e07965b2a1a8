"""Physical Dockerfile text → logical lines with positions (BuildKit's parser.Parse).

- A UTF-8 BOM at the start is dropped; lines end at ``\\n`` (a trailing ``\\r`` is
  dropped too, so CRLF files work).
- Parser directives (``# syntax=``, ``# escape=``, ``# check=``; keys case-insensitive)
  are only recognised at the very top: the first line that is not a directive (an
  instruction, a blank line, any other comment) ends them.
- Comment lines (``#`` as first non-blank character) are dropped. The escape character
  at the end of a line (trailing blanks allowed) continues the instruction on the next
  line; comment lines and blank lines inside a continuation are skipped; an escaped
  escape character (``\\\\``) at the end of a line is not a continuation; a continuation
  at end of file ends the instruction.
- RUN/COPY/ADD (also under ONBUILD, not in JSON form) may name heredocs (``<<EOF``,
  ``<<-EOF``, ``<<"EOF"``, several per line); their bodies follow the instruction line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from ocibuild._record import dataclass, field
from ocibuild.dockerfile.expand import GO_SPACES, process
from ocibuild.dockerfile.words import heredoc_capable
from ocibuild.errors import DockerfileError, ExpansionError, Position

DIRECTIVES = ("syntax", "escape", "check")
_GO_SPACE_STR = "".join(sorted(GO_SPACES))
_RE_DIRECTIVE = re.compile(r"^#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)"
                           r"[\t\n\f\r ]*\Z", re.DOTALL)  # fmt: skip
_RE_HEREDOC = re.compile(r"([0-9]*)<<(-?)([^<]*)\Z")
_RE_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)


@dataclass(frozen=True)
class RawHeredoc:
    """A here-document as read: the body keeps its line endings and its tabs."""

    name: str
    content: str
    expand: bool
    chomp: bool
    fd: int = 0

    def chomped(self) -> str:
        """The body with leading tabs removed when the heredoc is ``<<-``."""
        return _RE_LEADING_TABS.sub("", self.content) if self.chomp else self.content


@dataclass(frozen=True)
class LogicalLine:
    """One instruction's text with continuations joined, and where it sits."""

    text: str
    start_line: int  # 1-based
    end_line: int  # last physical line, heredoc bodies included
    heredocs: tuple[RawHeredoc, ...] = ()
    empty_continuation: bool = False  # BuildKit warns about blank lines in a continuation
    text_end_line: int = 0  # last physical line of the instruction text (before heredocs)


@dataclass(frozen=True)
class Lexed:
    directives: dict[str, str]
    escape: str
    lines: tuple[str, ...]  # physical lines, without line endings
    logical: tuple[LogicalLine, ...] = field(default=())


def lex(text: str, name: str = "Dockerfile") -> Lexed:
    """Lex the whole text (the parser uses the lazy pieces below instead)."""
    physical = split_lines(text)
    directives, escape = parse_directives(physical, name)
    logical = tuple(iter_logical(physical, escape, name))
    return Lexed(directives, escape, tuple(strip_eol(x) for x in physical), logical)


def split_lines(text: str) -> list[str]:
    """Physical lines, each keeping its ``\\n``; a leading BOM is dropped."""
    if text.startswith("\ufeff"):
        text = text[1:]
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def strip_eol(line: str) -> str:
    return line.rstrip("\r\n")


def parse_directives(lines: Sequence[str], name: str = "Dockerfile") -> tuple[dict[str, str], str]:
    """The parser directives at the top of the file and the escape character."""
    found: dict[str, str] = {}
    escape = "\\"
    for number, raw in enumerate(lines, start=1):
        m = _RE_DIRECTIVE.match(strip_eol(raw).lstrip(_GO_SPACE_STR))
        if m is None or m.group(1).lower() not in DIRECTIVES:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key in found:
            raise _directive_error(
                f"only one {key} parser directive can be used",
                name,
                number,
                raw,
                "remove the repeated directive",
            )
        if key == "escape":
            if value not in ("\\", "`"):
                raise _directive_error(
                    f"invalid escape token '{value}' does not match ` or \\",
                    name,
                    number,
                    raw,
                    "use '# escape=\\' (the default) or '# escape=`'",
                )
            escape = value
        found[key] = value
    return found, escape


def _directive_error(message: str, name: str, number: int, raw: str, hint: str) -> DockerfileError:
    pos = Position(file=name, line=number, end_line=number)
    return DockerfileError(message, pos=pos, source=strip_eol(raw), hint=hint)


def _is_comment(raw: str) -> bool:
    return strip_eol(raw).lstrip(_GO_SPACE_STR).startswith("#")


def _continuation_regex(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")


def _trim_continuation(line: str, rx: re.Pattern[str]) -> tuple[str, bool]:
    """The line without its continuation character, and whether the instruction ends."""
    m = rx.search(line)
    if m is None:
        return line, True
    return line[: m.start()] + (m.group(1) or ""), False


def iter_logical(
    lines: Sequence[str], escape: str, name: str = "Dockerfile"
) -> Iterator[LogicalLine]:
    """Logical lines, lazily, so that errors come out in file order."""
    rx = _continuation_regex(escape)
    i = 0
    n = len(lines)
    while i < n:
        raw = lines[i]
        i += 1
        token = strip_eol(raw).lstrip(_GO_SPACE_STR)
        if token.startswith("#"):
            token = ""
        start = i
        text, done = _trim_continuation(token, rx)
        if done and not text:
            continue
        parts = [text]
        empty_continuation = False
        while not done and i < n:
            raw = lines[i]
            i += 1
            if _is_comment(raw):
                continue
            token = strip_eol(raw)
            if not token.lstrip(_GO_SPACE_STR):
                empty_continuation = True
                continue
            token, done = _trim_continuation(token, rx)
            parts.append(token)
        line = "".join(parts)
        text_end = i
        heredocs: list[RawHeredoc] = []
        if "<<" in line and heredoc_capable(line):
            for doc in heredocs_from_line(line, Position(name, start, text_end), lines):
                terminated = False
                body: list[str] = []
                while i < n:
                    raw = lines[i]
                    i += 1
                    candidate = strip_eol(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise DockerfileError(
                        "unterminated heredoc",
                        pos=Position(name, start, i),
                        source=_excerpt(lines, start, text_end),
                        instruction=line.split(maxsplit=1)[0].upper(),
                        hint=f"end the here-document with a line holding only {doc.name!r}",
                    )
                heredocs.append(RawHeredoc(doc.name, "".join(body), doc.expand, doc.chomp, doc.fd))
        yield LogicalLine(line, start, i, tuple(heredocs), empty_continuation, text_end)


def _excerpt(lines: Sequence[str], start: int, end: int) -> str:
    return "\n".join(strip_eol(x) for x in lines[start - 1 : end])


def heredocs_from_line(
    line: str, pos: Position | None = None, lines: Sequence[str] = ()
) -> list[RawHeredoc]:
    """The heredocs a line names, in order (bodies still empty)."""
    try:
        words = process(line, {}, "\\", raw_quotes=True, raw_escapes=True, skip_unset=True).words
    except ExpansionError:
        return []  # BuildKit ignores lines its lexer cannot split
    docs = []
    for word in words:
        try:
            doc = parse_heredoc(word)
        except ExpansionError as e:
            source = _excerpt(lines, pos.line, pos.end_line) if pos else None
            raise DockerfileError(e.message, pos=pos, source=source) from None
        if doc is not None:
            docs.append(doc)
    return docs


def parse_heredoc(word: str) -> RawHeredoc | None:
    """``<<EOF``, ``<<-EOF``, ``<<"EOF"``, ``3<<EOF`` → a heredoc; anything else → None."""
    m = _RE_HEREDOC.match(word)
    if m is None or not m.group(3):
        return None
    rest = m.group(3)
    words = process(rest, {}, "\\", skip_unset=True).words
    if len(words) != 1:
        return None
    raw_words = process(rest, {}, "\\", raw_quotes=True, skip_unset=True).words
    if len(raw_words) != 1:
        raise ExpansionError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw_words[0].count("'") + raw_words[0].count('"')
    return RawHeredoc(
        name=words[0],
        content="",
        expand=quotes == raw_quotes,
        chomp=m.group(2) == "-",
        fd=int(m.group(1) or "0"),
    )
