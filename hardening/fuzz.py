"""Fuzz targets for the parts that read untrusted text and bytes.

Each target feeds one input to one reader; the only exceptions allowed out are our own
error types. Run a campaign with atheris (coverage-guided):

    python -m hardening.fuzz parser -atheris_runs=200000
    python -m hardening.fuzz expand|ignore|layer ...

The same targets run under hypothesis in tests/hardening/test_fuzz.py (in `make test`).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Callable

from ocibuild.dockerfile.expand import expand_word, expand_words
from ocibuild.dockerfile.ignore import IgnoreMatcher, load_patterns
from ocibuild.dockerfile.parser import dump_buildkit, parse, to_json
from ocibuild.errors import DockerfileError, LayerError, OcibuildError
from ocibuild.layers.apply import apply_layer

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": "", "X": "a b"}


def target_parser(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    with contextlib.suppress(DockerfileError):
        dump_buildkit(text)  # the parser alone (`ocibuild parse --format buildkit`)
    try:
        df = parse(text)
    except DockerfileError:
        return
    to_json(df)


def target_expand(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    escape = "`" if data[:1] == b"`" else "\\"
    for fn in (expand_word, expand_words):
        with contextlib.suppress(DockerfileError):
            fn(text, ENV, escape)


def target_ignore(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    patterns, _, path = text.partition("\0")
    try:
        matcher = IgnoreMatcher(load_patterns(patterns))
    except OcibuildError:
        return
    matcher.matches(path or "a/b/c")
    matcher.could_include_children(path or "a")


def target_layer(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as dest:
        try:
            apply_layer(io.BytesIO(data), dest)
        except LayerError:
            return
        # whatever was unpacked stays inside dest
        for dirpath, dirs, files in os.walk(dest):
            for name in dirs + files:
                real = os.path.realpath(os.path.join(dirpath, name), strict=False)
                link = os.path.islink(os.path.join(dirpath, name))
                assert link or real.startswith(os.path.realpath(dest)), real


TARGETS: dict[str, Callable[[bytes], None]] = {
    "parser": target_parser,
    "expand": target_expand,
    "ignore": target_ignore,
    "layer": target_layer,
}


def main() -> None:
    import atheris

    name = sys.argv[1] if len(sys.argv) > 1 else "parser"
    target = TARGETS[name]
    atheris.instrument_all()
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
