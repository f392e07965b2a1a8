"""BuildKit's parser test corpus (v0.11.6): `ocibuild parse --format buildkit` must print
exactly the ``result`` file of each case, and reject each negative case, as
``TestParseCases`` / ``TestParseErrorCases`` in BuildKit's frontend/dockerfile/parser do.

The corpus is test data copied from BuildKit (see tests/data/buildkit-parser/ORIGIN.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ocibuild.dockerfile.parser import dump_buildkit
from ocibuild.errors import DockerfileError

CORPUS = Path(__file__).resolve().parents[1] / "data" / "buildkit-parser"
CASES = sorted(p.name for p in (CORPUS / "testfiles").iterdir())
NEGATIVE = sorted(p.name for p in (CORPUS / "testfiles-negative").iterdir())


def _text(path: Path) -> str:
    # As BuildKit reads it: bytes, lines split on "\n" only.
    return path.read_bytes().decode("utf-8", errors="surrogateescape")


def test_corpus_is_complete() -> None:
    assert len(CASES) == 33 and len(NEGATIVE) == 4


@pytest.mark.parametrize("case", CASES)
def test_parse_case(case: str) -> None:
    expected = (CORPUS / "testfiles" / case / "result").read_text()
    assert dump_buildkit(_text(CORPUS / "testfiles" / case / "Dockerfile")) == expected


@pytest.mark.parametrize("case", NEGATIVE)
def test_parse_error_case(case: str) -> None:
    with pytest.raises(DockerfileError):
        dump_buildkit(_text(CORPUS / "testfiles-negative" / case / "Dockerfile"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocibuild", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("case", ["flags", "health", "json", "env", "escape-with-syntax"])
def test_cli_prints_the_result_file(case: str) -> None:
    # the command a user runs; these cases hold what the instruction layer refuses
    # (unknown flags, a bare HEALTHCHECK, CMD before FROM)
    proc = _cli("parse", "--format", "buildkit", str(CORPUS / "testfiles" / case / "Dockerfile"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (CORPUS / "testfiles" / case / "result").read_text()


def test_cli_negative_case_is_a_clean_error() -> None:
    path = CORPUS / "testfiles-negative" / "env_no_value" / "Dockerfile"
    proc = _cli("parse", "--format", "buildkit", str(path))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "Dockerfile:3" in proc.stderr and "ENV must have two arguments" in proc.stderr
    assert proc.stdout == ""
