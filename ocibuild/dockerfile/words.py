"""BuildKit's line parsers: one logical line → command, flags and argument node.

This is the layer BuildKit calls ``parser.Node`` (frontend/dockerfile/parser:
split_command.go and line_parsers.go). It decides JSON (exec) form against shell form,
splits ``--flags`` off the front, and splits ENV/LABEL/ARG words keeping their quotes.
The typed instructions are built from a :class:`Node` by ``parser.py``; ``Node.dump``
is BuildKit's ``Node.Dump`` (the form of its parser test files).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from ocibuild._record import dataclass, field
from ocibuild.dockerfile.expand import GO_SPACES, go_quote
from ocibuild.errors import DockerfileError

NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"
_RE_WS = re.compile(r"[\t\v\f\r ]+")
_GO_SPACE_STR = "".join(sorted(GO_SPACES))


@dataclass
class Node:
    """One instruction as BuildKit's parser sees it, before typing."""

    value: str  # the command word as written
    original: str  # the logical line
    flags: list[str] = field(default_factory=list)  # "--name=value" / "--name"
    args: list[str] = field(default_factory=list)
    child: Node | None = None  # ONBUILD's trigger
    json: bool = False

    def dump(self) -> str:
        """BuildKit's ``Node.Dump``: ``run ["--mount=x"] "echo hi"``."""
        text = self.value.lower()
        if self.flags:
            text += " [" + " ".join(go_quote(f) for f in self.flags) + "]"
        if self.child is not None:
            text += " (" + self.child.dump() + ")"
        for arg in self.args:
            text += " " + go_quote(arg)
        return text.strip(_GO_SPACE_STR)


def go_trim(s: str) -> str:
    """Go's strings.TrimSpace."""
    return s.strip(_GO_SPACE_STR)


def split_command(line: str) -> tuple[str, list[str], str]:
    """The command word, the leading ``--flags`` and the rest of the line."""
    parts = _RE_WS.split(go_trim(line), maxsplit=1)
    args, flags = "", list[str]()
    if len(parts) == 2:
        args, flags = extract_builder_flags(parts[1])
    return parts[0], flags, go_trim(args)


def extract_builder_flags(line: str) -> tuple[str, list[str]]:
    """Split the ``--flag[=value]`` words off the front of ``line`` (quotes removed)."""
    in_spaces, in_word, in_quote = 0, 1, 2
    words: list[str] = []
    phase = in_spaces
    word: list[str] = []
    quote = ""
    blank_ok = False
    n = len(line)
    pos = 0
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if ch in GO_SPACES:
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = in_word
        if pos == n:  # in a word or a quote
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if phase == in_word:
            if ch in GO_SPACES:
                phase = in_spaces
                text = "".join(word)
                if text == "--":
                    return line[pos:], words
                if blank_ok or text:
                    words.append(text)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote, blank_ok, phase = ch, True, in_quote
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in a quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def parse_words(rest: str, escape: str) -> list[str]:
    """Space-delimited words, quotes and escapes kept (BuildKit's parseWords)."""
    in_spaces, in_word, in_quote = 0, 1, 2
    words: list[str] = []
    phase = in_spaces
    quote = ""
    blank_ok = False
    buf: list[str] = []
    n = len(rest)
    pos = 0
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if ch in GO_SPACES:
                pos += 1
                continue
            phase = in_word
        if pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == in_word:
            if ch in GO_SPACES:
                phase = in_spaces
                if blank_ok or buf:
                    words.append("".join(buf))
                buf = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote, blank_ok, phase = ch, True, in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue  # an escape at the end of the line is dropped
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        # in a quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            buf.append(ch)
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    return words


def _reject_constant(name: str) -> object:
    raise ValueError(name)


def parse_json(rest: str) -> list[str] | None:
    """The JSON array of strings, or None when ``rest`` is not a JSON array.

    A valid JSON array with a non-string element is an error, as in BuildKit.
    """
    text = rest.lstrip(_GO_SPACE_STR)
    if not text.startswith("["):
        return None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return None
    if not isinstance(data, list):
        return None
    if not all(isinstance(x, str) for x in data):
        raise DockerfileError(NOT_STRING_ARRAY, hint='quote every element: ["executable", "arg"]')
    return [str(x) for x in data]


# -- per-instruction line parsers: (rest, escape) -> (args, json) ----------------------

_Result = tuple[list[str], bool]


def _maybe_json(rest: str, escape: str) -> _Result:
    if not rest:
        return [], False
    parsed = parse_json(rest)
    return (parsed, True) if parsed is not None else ([rest], False)


def _maybe_json_to_list(rest: str, escape: str) -> _Result:
    parsed = parse_json(rest)
    return (parsed, True) if parsed is not None else (_whitespace_list(rest, escape)[0], False)


def _whitespace_list(rest: str, escape: str) -> _Result:
    return (_RE_WS.split(rest) if rest else []), False


def _string(rest: str, escape: str) -> _Result:
    return ([rest] if rest else []), False


def _name_or_name_val(rest: str, escape: str) -> _Result:
    return parse_words(rest, escape), False


def _name_val(key: str) -> Callable[[str, str], _Result]:
    """ENV/LABEL: ``key value`` (legacy) or ``k=v ...``; args are key, value, key, value...
    (BuildKit v0.11.6's nodes; later versions add a separator node to each pair)."""

    def parse(rest: str, escape: str) -> _Result:
        words = parse_words(rest, escape)
        if not words:
            return [], False
        if "=" not in words[0]:  # legacy "ENV key value"
            parts = _RE_WS.split(rest, maxsplit=1)
            if len(parts) < 2:
                raise DockerfileError(
                    f"{key} must have two arguments", hint=f"use {key} name=value"
                )
            return [parts[0], parts[1]], False
        out: list[str] = []
        for word in words:
            if "=" not in word:
                raise DockerfileError(
                    f"Syntax error - can't find = in {go_quote(word)}. "
                    "Must be of the form: name=value",
                    hint='quote values that contain spaces: name="a b"',
                )
            k, v = word.split("=", 1)
            out += [k, v]
        return out, False

    return parse


def _health(rest: str, escape: str) -> _Result:
    sep = 0
    while sep < len(rest) and rest[sep] not in GO_SPACES:
        sep += 1
    nxt = sep
    while nxt < len(rest) and rest[nxt] in GO_SPACES:
        nxt += 1
    if sep == 0:
        return [], False
    args, is_json = _maybe_json(rest[nxt:], escape)
    return [rest[:sep], *args], is_json


_LINE_PARSERS: dict[str, Callable[[str, str], _Result]] = {
    "add": _maybe_json_to_list,
    "arg": _name_or_name_val,
    "cmd": _maybe_json,
    "copy": _maybe_json_to_list,
    "entrypoint": _maybe_json,
    "env": _name_val("ENV"),
    "expose": _whitespace_list,
    "from": _whitespace_list,
    "healthcheck": _health,
    "label": _name_val("LABEL"),
    "maintainer": _string,
    "run": _maybe_json,
    "shell": _maybe_json,
    "stopsignal": _string,
    "user": _string,
    "volume": _maybe_json_to_list,
    "workdir": _string,
}


def parse_node(line: str, escape: str = "\\") -> Node:
    """BuildKit's newNodeFromLine. Raises DockerfileError (without position)."""
    cmd, flags, rest = split_command(line)
    node = Node(value=cmd, original=line, flags=flags)
    key = cmd.lower()
    if key == "onbuild":
        if rest:
            node.child = parse_node(rest, escape)
        return node
    fn = _LINE_PARSERS.get(key)
    if fn is not None:  # unknown instructions keep no arguments
        node.args, node.json = fn(rest, escape)
    return node


def heredoc_capable(line: str) -> bool:
    """Whether BuildKit reads heredoc bodies after this line (RUN/COPY/ADD, directly
    or under ONBUILD, not in JSON form). A line that fails to parse is not."""
    try:
        node = parse_node(line)
    except DockerfileError:
        return False
    if node.value.lower() == "onbuild" and node.child is not None:
        node = node.child
    return node.value.lower() in ("run", "copy", "add") and not node.json
