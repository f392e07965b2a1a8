"""Here-documents in RUN, COPY and ADD, the way BuildKit's dispatcher uses them."""

from __future__ import annotations

from collections.abc import Mapping

from ocibuild._record import dataclass
from ocibuild.dockerfile.expand import process
from ocibuild.dockerfile.instructions import Command, Heredoc
from ocibuild.dockerfile.lexer import parse_heredoc
from ocibuild.errors import ExpansionError


@dataclass(frozen=True)
class RunScript:
    """What a RUN with heredocs executes.

    ``args`` is the command before the SHELL prefix; ``script`` is set when the single
    heredoc starts with ``#!``: it is written to ``/dev/pipes/NAME`` (mode 0755) and run
    from there, as BuildKit does.
    """

    args: tuple[str, ...]
    script: Heredoc | None = None


def is_heredoc_word(word: str) -> bool:
    try:
        return parse_heredoc(word) is not None
    except ExpansionError:
        return False


def run_script(command: Command, heredocs: tuple[Heredoc, ...]) -> RunScript:
    """BuildKit's dispatchRun for ``c.Files``: the whole command a heredoc → run its body
    (through the shell, or as a script when it has a shebang); otherwise the shell gets
    the command line with the bodies and terminators appended."""
    if not heredocs or command.exec_form:
        return RunScript(command.args)
    line = command.args[0] if command.args else ""
    first = heredocs[0]
    if is_heredoc_word(line):
        if first.content.startswith("#!"):
            return RunScript(("/dev/pipes/" + first.name,), first)
        return RunScript((first.content,))
    full = line
    for doc in heredocs:
        full += "\n" + doc.content + doc.name
    return RunScript((full,))


def heredoc_content(doc: Heredoc, env: Mapping[str, str]) -> str:
    """A COPY/ADD heredoc's file content: expanded (quotes kept) unless the delimiter was
    quoted (BuildKit's ExpandRaw with SkipProcessQuotes)."""
    if not doc.expand:
        return doc.content
    return process(doc.content, env, "\\", skip_quotes=True).word
