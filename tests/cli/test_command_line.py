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


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("MyApp:latest", "repository name must be lowercase"),
        ("app:1:2", "invalid name"),
        ("my app", "invalid image reference"),
        ("app@sha256:abc", "invalid digest"),
    ],
)
def test_bad_tag_is_refused_before_the_build(
    ocb: Ocibuild, context: Path, name: str, why: str
) -> None:
    marker = context / "ran"
    (context / "Dockerfile").write_text(f"FROM scratch\nRUN touch {marker}\n")
    r = ocb.build(context, "-t", name, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: -t {name}: ")
    assert why in r.stderr
    assert "[1/" not in r.stderr  # no step started
    assert "Traceback" not in r.stderr
    assert name not in ocb("images").stdout
