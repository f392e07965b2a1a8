"""Word expansion: BuildKit's shell word lexer (frontend/dockerfile/shell/lex.go).

``expand_word`` is BuildKit's ``ProcessWord``: quotes removed, escapes applied, ``$var``
and ``${var...}`` substituted, whitespace kept. ``expand_words`` is ``ProcessWords``:
the same processing, then a split on unquoted whitespace (including whitespace that an
unquoted expansion produced). Both raise :class:`ExpansionError` with a message only;
the caller knows the instruction and adds the position.

Supported forms: ``$v ${v} ${v:-w} ${v-w} ${v:+w} ${v+w} ${v:?w} ${v?w} ${v#p} ${v##p}
${v%p} ${v%%p} ${v/p/r} ${v//p/r}``; patterns are shell globs (``*``, ``?``, ``\\``).
Positional (``$1``) and special (``$@ $* $# $? $- $$ $! $0``) parameters are never set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ocibuild._record import dataclass
from ocibuild.errors import ExpansionError

# Go's unicode.IsSpace
GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPECIAL_PARAMS = "@*#?-$!0"


class _Fail(Exception):
    """An error inside the lexer; turned into ExpansionError at the top."""


@dataclass(frozen=True)
class WordResult:
    """Everything one pass of the lexer produces."""

    word: str  # ProcessWord
    words: list[str]  # ProcessWords


def expand_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand one word the way BuildKit's ``ProcessWord`` does."""
    return process(word, env, escape).word


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand and split on unquoted whitespace, as BuildKit's ``ProcessWords``."""
    return process(word, env, escape).words


def process(
    word: str,
    env: Mapping[str, str],
    escape: str = "\\",
    *,
    raw_quotes: bool = False,
    raw_escapes: bool = False,
    skip_unset: bool = False,
    skip_quotes: bool = False,
) -> WordResult:
    """The lexer with all of BuildKit's knobs (``RawQuotes``, ``RawEscapes``,
    ``SkipUnsetEnv``); the parser uses them to find heredoc words."""
    sw = _ShellWord(word, env, escape, raw_quotes, raw_escapes, skip_unset)
    sw.skip_quotes = skip_quotes  # BuildKit's SkipProcessQuotes (heredoc bodies)
    try:
        result, words = sw.process_stop_on("", raw_escapes)
    except _Fail as e:
        raise ExpansionError(f"failed to process {go_quote(word)}: {e}") from None
    return WordResult(result, words)


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote``."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_GO_ESCAPES["\v"] = "\\v"


def _is_digit(ch: str) -> bool:
    return ch.isdecimal()


def _is_name_char(ch: str) -> bool:
    return ch.isalpha() or ch.isdecimal() or ch == "_"


class _Words:
    """BuildKit's wordsStruct: accumulates the ProcessWords result."""

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in GO_SPACES:
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _ShellWord:
    def __init__(
        self,
        text: str,
        env: Mapping[str, str],
        escape: str,
        raw_quotes: bool,
        raw_escapes: bool,
        skip_unset: bool,
    ) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.skip_quotes = False

    # -- scanner: "" stands for EOF ------------------------------------------------
    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    # -- the lexer -------------------------------------------------------------------
    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.get_words()
            if ch == "$":
                tmp = self.dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif ch == "'" and not self.skip_quotes:
                tmp = self.single_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            elif ch == '"' and not self.skip_quotes:
                tmp = self.double_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            else:
                ch = self.next()
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if not ch:  # escape at end of word: dropped
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise _Fail(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get_words()

    def single_quote(self) -> str:
        out: list[str] = []
        ch = self.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            ch = self.next()
            if not ch:
                raise _Fail("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        out: list[str] = []
        ch = self.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            nxt = self.peek()
            if not nxt:
                raise _Fail("unexpected end of statement while looking for matching double-quote")
            if nxt == '"':
                ch = self.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                after = self.peek()
                if not after:
                    continue  # escape at end: ignored (then the missing quote fails)
                if after in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        out: list[str] = []
        while self.peek():
            ch = self.peek()
            if not out and _is_digit(ch):
                while self.peek() and _is_digit(self.peek()):
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return self.next()
            if not _is_name_char(ch):
                break
            out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        self.next()  # the {
        first = self.peek()
        if not first:
            raise _Fail("syntax error: missing '}'")
        if first in "{}:":
            raise _Fail("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == ":" or (ch and ch in "+-?#%"):
            return self._modifier(name, ch)
        if ch == "/":
            return self._replace(name)
        raise _Fail(f"unsupported modifier ({ch}) in substitution")

    def _modifier(self, name: str, ch: str) -> str:
        chs = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch
        try:
            word, _ = self.process_stop_on("}", ch in ("#", "%") and ch != "")
        except _Fail:
            if not self.peek():
                raise _Fail("syntax error: missing '}'") from None
            raise
        value, found = self.get_env(name)
        if self.skip_unset and not found:
            return "${" + name + chs + word + "}"
        empty = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not found:
                raise _Fail(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _Fail(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%") and ch:
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise _Fail(f"unsupported modifier ({chs}) in substitution")

    def _replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.process_stop_on("/", True)
        except _Fail:
            if not self.peek():
                raise _Fail("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.process_stop_on("}", True)
        except _Fail:
            if not self.peek():
                raise _Fail("syntax error: missing '}'") from None
            raise
        value, found = self.get_env(name)
        if self.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        rx = _pattern_regex(pattern, True, False)
        if replace_all:
            return _go_replace_all(rx, value, replacement)
        m = rx.search(value)
        if m:
            value = value[: m.start()] + replacement + value[m.end() :]
        return value


# -- shell patterns ------------------------------------------------------------------


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """BuildKit's convertShellPatternToRegex (no bracket expressions)."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/") and nxt:
                continue  # escaped } and / belong to ${}, not to the pattern
            i += 1
            if nxt not in ("*", "?", "\\") or not nxt:
                err = f"invalid escape '\\{nxt}'"
                raise _Fail(f"invalid pattern ({pattern}) in substitution: {err}")
            out.append("\\" + nxt)
            continue
        out.append("\\" + tok if tok in "[]{}.+()|^$" else tok)
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy, True).search(value)
    return value[m.end() :] if m else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern, keeping escapes in front of what they escape."""
    runes = list(pattern)
    last = len(runes) - 1
    out = [""] * len(runes)
    i = 0
    while i <= last:
        tok = runes[i]
        idx = last - i
        if tok == "\\" and i != last:
            out[idx - 1] = tok
            out[idx] = runes[i + 1]
            i += 2
        else:
            out[idx] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # shortest rightmost match == shortest leftmost match of the reversed strings
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _go_replace_all(rx: re.Pattern[str], src: str, template: str) -> str:
    """Go's Regexp.ReplaceAllString: no empty match right after a match, and ``$0``,
    ``${name}``, ``$$`` expanded in the replacement."""
    out: list[str] = []
    last_end = 0
    search = 0
    while search <= len(src):
        m = rx.search(src, search)
        if m is None:
            break
        start, end = m.span()
        out.append(src[last_end:start])
        if end > last_end or start == 0:
            out.append(_go_expand(template, m.group(0)))
        last_end = end
        width = 1 if search < len(src) else 0
        if search + width > end:
            search += width
        elif search + 1 > end:
            search += 1
        else:
            search = end
    out.append(src[last_end:])
    return "".join(out)


_TEMPLATE_NAME = re.compile(r"\{(\w+)\}|(\w+)")


def _go_expand(template: str, whole: str) -> str:
    out: list[str] = []
    rest = template
    while True:
        before, dollar, rest = rest.partition("$")
        out.append(before)
        if not dollar:
            return "".join(out)
        if rest.startswith("$"):
            out.append("$")
            rest = rest[1:]
            continue
        m = _TEMPLATE_NAME.match(rest)
        if m is None:
            out.append("$")
            continue
        rest = rest[m.end() :]
        name = m.group(1) or m.group(2)
        if name == "0":
            out.append(whole)  # the only group our patterns have
