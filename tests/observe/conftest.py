"""Fixtures for the observability tests: the session store (``ocb``, ``base_image``) and
helpers to read what a build recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ocibuild
from tests.registry.server import Registry


def step_lines(stderr: str) -> dict[str, list[str]]:
    """Step text (without ``[n/m] ``) -> the lines printed under it."""
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in stderr.splitlines():
        if line.startswith("[") and "] " in line:
            current = out.setdefault(line.split("] ", 1)[1], [])
        elif line.startswith("  "):
            current.append(line[2:])
    return out


def decision(stderr: str, step: str) -> str:
    """The HIT/MISS line of the step whose text starts with ``step``."""
    for text, lines in step_lines(stderr).items():
        if text.startswith(step):
            for line in lines:
                if line.startswith(("MISS", "-> HIT")):
                    return line.removeprefix("-> ").split(",")[0]
            return ""
    raise AssertionError(f"no step {step!r} in:\n{stderr}")


def build_id(result_stderr: str) -> str:
    for line in reversed(result_stderr.splitlines()):
        if "; build " in line:
            return line.rsplit("; build ", 1)[1].strip()
    raise AssertionError("no build ID in the output")


def layer_size(ocb: Ocibuild, diff_id: str) -> int:
    info: dict[str, Any] = json.loads(
        (Path(ocb.root) / "layers" / diff_id.partition(":")[2] / "layer.json").read_text()
    )
    return int(info["size"])


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The registry tests' plain registry (Debian's docker-registry on 127.0.0.1)."""
    from tests.registry.conftest import _start

    yield from _start(tmp_path_factory, "registry", False)
