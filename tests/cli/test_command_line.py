"""The command line as a user types it: docker build conventions, clear set-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Ocibuild


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("--check", "--check-reproducible"), ("--tar", "--target"), ("--no-cac", "--no-cache")],
)
def test_abbreviated_long_options_are_refused(
    ocb: Ocibuild, context: Path, typed: str, meant: str
) -> None:
    (context / "Dockerfile").write_text("FROM scratch\n")
    args = [typed, "x"] if meant == "--target" else [typed]
    r = ocb.build(context, *args, check=False)
    assert r.returncode == 1
    assert f"unrecognized arguments: {typed}" in r.stderr
    assert r.stdout == ""  # nothing was built


def test_version(ocb: Ocibuild) -> None:
    r = ocb("--version")
    assert r.stdout.startswith("ocibuild ")
    assert r.stdout.split()[1][0].isdigit()
