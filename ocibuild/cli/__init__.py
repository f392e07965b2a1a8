"""Command line: the only place that prints errors and chooses exit codes.

One module per group of commands, each with ``register(subparsers)``; ``main`` catches
every error the library raises and turns it into a message and an exit status.

Start-up is part of every fully cached rebuild, so ``ocibuild build ...`` makes a parser
with the build command alone (the other command modules, and what they import, are not
loaded), and the version is looked up only when ``--version`` asks for it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ocibuild import interrupts
from ocibuild.cli import build_compat
from ocibuild.errors import Interrupted, OcibuildError
from ocibuild.supervisor import supervised

# the command modules, in --help order (imported when a parser needs them)
MODULE_NAMES = ("build", "images", "maintenance", "history", "registry", "doctor", "observe")
FAST_COMMANDS = {"build": ("build",)}  # command word -> the only module its parser needs


class Parser(argparse.ArgumentParser):
    """No abbreviated long options (``--check`` is not ``--check-reproducible``), in every
    sub-command too (``add_subparsers`` makes its parsers of this class); a usage error
    exits 1, like every other bad input."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show program's version number and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from ocibuild._version import version

        print(f"ocibuild {version()}")
        parser.exit()


def make_parser(words: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The command line's parser; with ``words`` whose first one is a command of
    ``FAST_COMMANDS``, a parser that knows that command only (same options, same help)."""
    parser = Parser(
        prog="ocibuild", description="Build OCI images from Dockerfiles, without a daemon."
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = FAST_COMMANDS.get(words[0], MODULE_NAMES) if words else MODULE_NAMES
    for name in names:
        importlib.import_module(f"ocibuild.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        words = build_compat.rewrite_argv(sys.argv[1:] if argv is None else argv)
    except OcibuildError as exc:
        print(f"error: {format_error(exc)}", file=sys.stderr)
        return 1
    # The command's modules are imported while the parser is made: objects that live as
    # long as the process, not garbage. The collector (about 10 ms of a cached rebuild
    # otherwise) waits until they are in, then leaves them out of its scans (freeze).
    collect = gc.isenabled()
    gc.disable()
    try:
        args = make_parser(words).parse_args(words)
    finally:
        if collect:
            if argv is None:  # the process is the command: what is loaded now stays
                gc.freeze()
            gc.enable()
    if getattr(args, "supervise", False):
        # build and run start containers: run them where kill -9 leaves nothing behind
        return supervised(lambda: dispatch(args), exit_now=argv is None)
    return dispatch(args)


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen command; every error becomes a message and an exit status."""
    # SIGTERM -> Interrupted, Ctrl-C -> KeyboardInterrupt; never inside a fork
    previous = interrupts.install()
    try:
        rc: int = args.func(args)
        return rc
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Interrupted as exc:
        print("\nterminated", file=sys.stderr)
        return exc.exit_code
    except OcibuildError as exc:
        print(f"error: {format_error(exc)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `ocibuild images | head`: the reader went away; end quietly
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141  # as if killed by SIGPIPE
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    finally:
        interrupts.restore(previous)


def format_error(exc: OcibuildError) -> str:
    """The error's text with every hint line marked ``hint:`` and no empty ones."""
    out: list[str] = []
    in_hint = False
    for line in exc.format().splitlines():
        if line.startswith("hint:"):
            in_hint = True
            line = line[5:].strip()
            if line:
                out.append(f"hint: {line}")
        elif in_hint:
            if line.strip():
                out.append(f"hint: {line.strip()}")
        else:
            out.append(line)
    return _ERRNO.sub("", "\n".join(out))


# "[Errno 2] No such file or directory: 'x'" inside a message reads as "No such file ..."
_ERRNO = re.compile(r"\[Errno \d+\] ")


def describe_os_error(exc: OSError) -> str:
    """``No such file or directory: /x`` rather than ``[Errno 2] No such file ...``."""
    text = exc.strerror or str(exc)
    if exc.filename is not None:
        text += f": {exc.filename}"
        if exc.filename2 is not None:
            text += f" -> {exc.filename2}"
    return text


if __name__ == "__main__":
    sys.exit(main())
