"""BuildKit's parser test corpus (v0.11.6): `ocibuild parse --format buildkit` must print
exactly the ``result`` file of each case, and reject each negative case, as
``TestParseCases`` / ``TestParseErrorCases`` in BuildKit's frontend/dockerfile/parser do.

The corpus is not copied into this repository: it is read from a git directory of
moby/buildkit (``$BUILDKIT_GIT``, default the snapshot the project's tooling fetches to
/work/.mirror/moby+buildkit/repo) at tag v0.11.6, unpacked once into
/var/tmp/ocibuild-buildkit-parser-v0.11.6. Without one the corpus tests skip and say so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ocibuild.dockerfile.parser import dump_buildkit
from ocibuild.errors import DockerfileError

TAG = "v0.11.6"
CORPUS = Path(f"/var/tmp/ocibuild-buildkit-parser-{TAG}")
GIT = os.environ.get("BUILDKIT_GIT", "/work/.mirror/moby+buildkit/repo")
PARSER_DIR = "frontend/dockerfile/parser"


def _unpack_corpus() -> bool:
    """Unpack the corpus from BuildKit's git directory once; False when there is none."""
    if (CORPUS / "testfiles").is_dir():
        return True
    if not os.path.isdir(GIT) or shutil.which("git") is None:
        return False
    tmp = Path(tempfile.mkdtemp(prefix=CORPUS.name + ".", dir=CORPUS.parent))
    archive = subprocess.run(
        ["git", "-C", GIT, "archive", TAG, f"{PARSER_DIR}/testfiles",
         f"{PARSER_DIR}/testfiles-negative"],
        capture_output=True, check=False,
    )  # fmt: skip
    if archive.returncode != 0:
        shutil.rmtree(tmp)
        return False
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
    (tmp / PARSER_DIR).rename(tmp / "corpus")
    with contextlib.suppress(OSError):  # another process unpacked it first
        (tmp / "corpus").rename(CORPUS)
    shutil.rmtree(tmp, ignore_errors=True)
    return (CORPUS / "testfiles").is_dir()


HAVE_CORPUS = _unpack_corpus()
pytestmark = pytest.mark.skipif(
    not HAVE_CORPUS,
    reason=f"BuildKit's parser corpus needs a git directory of moby/buildkit with tag {TAG} "
    "(set BUILDKIT_GIT; the project's tooling fetches one as github:moby/buildkit)",
)
CASES = sorted(p.name for p in (CORPUS / "testfiles").iterdir()) if HAVE_CORPUS else []
NEGATIVE = sorted(p.name for p in (CORPUS / "testfiles-negative").iterdir()) if HAVE_CORPUS else []


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
