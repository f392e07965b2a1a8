""".dockerignore: BuildKit's ignorefile.ReadAll + moby/patternmatcher.

Rules: one pattern per line; ``#`` in column 1 starts a comment; blanks trimmed; a
leading ``!`` makes an exception (re-include); paths are cleaned and a leading ``/`` (and
``./``) dropped; ``*`` and ``?`` never cross ``/``, ``**`` crosses any number of
directories, ``[...]`` is a character class, ``\\`` escapes; the last matching pattern
wins; a pattern that matches a parent directory matches everything below it.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence

from ocibuild._record import dataclass
from ocibuild.errors import DockerfileError, Position

_EXACT, _PREFIX, _SUFFIX, _REGEXP = "exact", "prefix", "suffix", "regexp"
_GO_SPACE = "\t\n\v\f\r \x85\xa0"


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern; ``exclusion`` is True for ``!pattern``."""

    pattern: str
    exclusion: bool
    match_type: str
    regex: re.Pattern[str] | None
    line: int = 0

    @property
    def dirs(self) -> list[str]:
        return self.pattern.split("/")

    def match(self, path: str) -> bool:
        if self.match_type == _EXACT:
            return path == self.pattern
        if self.match_type == _PREFIX:
            return path.startswith(self.pattern[:-2])
        if self.match_type == _SUFFIX:
            suffix = self.pattern[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]  # **/foo matches foo
        return self.regex is not None and self.regex.match(path) is not None


def clean(path: str) -> str:
    """Go's path.Clean."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    text = "/".join(out)
    if rooted:
        return "/" + text
    return text or "."


def load_patterns(text: str, name: str = ".dockerignore") -> list[Pattern]:
    """Parse a .dockerignore. Raises DockerfileError for a malformed pattern."""
    if text.startswith("\ufeff"):
        text = text[1:]
    out: list[Pattern] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if line.startswith("#"):
            continue
        pattern = line.strip(_GO_SPACE)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip(_GO_SPACE)
        if pattern:
            pattern = clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        # patternmatcher.New: clean again, then split the "!" off
        pattern = clean(("!" if invert else "") + pattern)
        try:
            out.append(compile_pattern(pattern, number))
        except ValueError as e:
            raise DockerfileError(
                str(e),
                pos=Position(name, number, number),
                source=line,
                hint="see https://docs.docker.com/build/concepts/context/#dockerignore-files",
            ) from None
    return out


def compile_pattern(text: str, line: int = 0) -> Pattern:
    """One patternmatcher pattern (``!`` prefix allowed). ValueError if malformed."""
    exclusion = text.startswith("!")
    if exclusion:
        if len(text) == 1:
            raise ValueError('illegal exclusion pattern: "!"')
        text = text[1:]
    _check_syntax(text)
    kind, regex_text = _translate(text)
    regex = None
    if kind == _REGEXP:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                regex = re.compile(regex_text)
        except re.error as e:
            raise ValueError(f"syntax error in pattern {text!r}: {e}") from None
    return Pattern(text, exclusion, kind, regex, line)


def _translate(pattern: str) -> tuple[str, str]:
    """patternmatcher's compile: the match type and the regular expression."""
    out = ["^"]
    kind = _EXACT
    i = 0
    n = len(pattern)
    first = True
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    if kind == _EXACT:
                        kind = _PREFIX
                    else:
                        out.append(".*")
                        kind = _REGEXP
                else:
                    out.append("(.*/)?")
                    kind = _REGEXP
                if first:
                    kind = _SUFFIX
            else:
                out.append("[^/]*")
                kind = _REGEXP
        elif ch == "?":
            out.append("[^/]")
            kind = _REGEXP
        elif ch in ".+()|{}$":
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
                kind = _REGEXP
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = _REGEXP
        else:
            out.append(ch)  # raw, as patternmatcher does (so "-" works inside [...])
        first = False
    return kind, "".join(out) + "\\Z"


def _check_syntax(pattern: str) -> None:
    """filepath.Match's ErrBadPattern: unclosed or empty classes, bad ranges, a
    trailing backslash."""
    bad = ValueError("syntax error in pattern")
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise bad
            i += 2
            continue
        if ch != "[":
            i += 1
            continue
        i += 1
        if i < n and pattern[i] == "^":
            i += 1
        ranges = 0
        while True:
            if i < n and pattern[i] == "]" and ranges > 0:
                i += 1
                break
            _, i = _class_char(pattern, i, bad)
            if i < n and pattern[i] == "-":
                _, i = _class_char(pattern, i + 1, bad)
            ranges += 1


def _class_char(pattern: str, i: int, bad: ValueError) -> tuple[str, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise bad
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise bad
    return pattern[i], i + 1


class IgnoreMatcher:
    """Decides which context paths a .dockerignore excludes."""

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        self.patterns = list(patterns)
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def matches(self, relpath: str) -> bool:
        """True if ``relpath`` (relative to the context, ``/``-separated) is excluded."""
        path = _normalize(relpath)
        if path == ".":
            return False
        parent = path.rsplit("/", 1)[0] if "/" in path else "."
        parent_dirs = parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit and parent != ".":
                hit = any(
                    pattern.match("/".join(parent_dirs[: i + 1])) for i in range(len(parent_dirs))
                )
            if hit:
                matched = not pattern.exclusion
        return matched

    def could_include_children(self, reldir: str) -> bool:
        """False when everything below ``reldir`` is certainly excluded, so a walker may
        skip the directory; True whenever some ``!`` exception might reach into it."""
        path = _normalize(reldir)
        if path == "." or not self.matches(path):
            return True
        parts = path.split("/")
        return any(p.exclusion and _may_reach(p, parts) for p in self.patterns)


def _normalize(relpath: str) -> str:
    path = clean(relpath.replace(os.sep, "/"))
    while path.startswith("/"):
        path = clean(path[1:])
    return path


def _may_reach(pattern: Pattern, parts: list[str]) -> bool:
    """Whether ``pattern`` could match ``parts`` itself, a parent, or something below."""
    dirs = pattern.dirs
    for i, part in enumerate(parts):
        if i >= len(dirs):
            return True  # the pattern names a parent of (or) the dir: re-includes it all
        component = dirs[i]
        if "**" in component:
            return True
        try:
            if not compile_pattern(component).match(part):
                return False
        except ValueError:
            return True
    return True


def find_ignore_file(context_dir: str, dockerfile_path: str | None = None) -> str | None:
    """``<Dockerfile>.dockerignore`` next to the Dockerfile, else ``CONTEXT/.dockerignore``.

    The only function here that looks at the filesystem (a stat, no reads).
    """
    if dockerfile_path:
        candidate = dockerfile_path + ".dockerignore"
        if os.path.isfile(candidate):
            return candidate
    candidate = os.path.join(context_dir, ".dockerignore")
    return candidate if os.path.isfile(candidate) else None
