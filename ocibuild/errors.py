"""The ocibuild error tree.

Library code raises these; only ``cli.py`` prints them and picks the exit status.
Every error carries a message, an optional hint (what to do about it) and, where it
comes from a Dockerfile, the position and the source line.
"""

from __future__ import annotations

from collections.abc import Sequence

from ocibuild._record import dataclass


@dataclass(frozen=True)
class Position:
    """Where an instruction sits in its Dockerfile (1-based lines)."""

    file: str
    line: int
    end_line: int = 0
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class OcibuildError(Exception):
    """Base of every error ocibuild raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        """The text the CLI prints, without the leading 'error: '."""
        text = self.message
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class DockerfileError(OcibuildError):
    """A Dockerfile that cannot be parsed or whose words cannot be expanded."""

    def __init__(
        self,
        message: str,
        *,
        pos: Position | None = None,
        source: str | None = None,
        instruction: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.pos = pos
        self.source = source
        self.instruction = instruction

    def format(self) -> str:
        where = f"{self.pos}: " if self.pos else ""
        what = f"{self.instruction}: " if self.instruction else ""
        text = f"{where}{what}{self.message}"
        if self.source is not None:
            for line in self.source.splitlines() or [""]:
                text += f"\n  | {line}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class ExpansionError(DockerfileError):
    """A word that BuildKit's shell lexer rejects (bad quoting, ``${}``, ``${v:?msg}``)."""


class BuildError(DockerfileError):
    """A step that failed while building (bad source, missing user, failing RUN...)."""


class RunError(BuildError):
    """A RUN step whose process exited non-zero (or was killed)."""

    def __init__(
        self,
        message: str,
        *,
        exit_status: int,
        command: list[str] | None = None,
        pos: Position | None = None,
        source: str | None = None,
        instruction: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, pos=pos, source=source, instruction=instruction, hint=hint)
        self.exit_status = exit_status
        self.command = command


class StoreError(OcibuildError):
    """The content store is missing something or is inconsistent."""


class ImageNotFound(StoreError):
    """No image by that name in the local store."""


class LayerError(OcibuildError):
    """A layer that cannot be written or applied (bad entry, unsupported xattr...)."""


class RuntimeFailure(OcibuildError):
    """The OCI runtime itself failed (not the process it ran)."""


class Interrupted(BaseException):
    """SIGTERM (or SIGINT) during a build: exit 128 + signal number.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` or
    ``except OcibuildError`` on the way up turns it into an ordinary error.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.exit_code = 128 + signum


def closest(word: str, names: Sequence[str]) -> str | None:
    """The name a typo most likely meant (difflib, ratio >= 0.6), for an error's "did you
    mean" hint; ``difflib`` is imported only when an error asks."""
    import difflib

    found = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return found[0] if found else None
