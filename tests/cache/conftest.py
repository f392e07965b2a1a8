"""Fixtures for the build-cache tests: a fresh store per test with a busybox base in it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_DOCKERFILE, BUSYBOX, Ocibuild, require_root


@pytest.fixture
def cocb(tmp_path: Path) -> Ocibuild:
    """The real CLI on an empty store of its own, with ``base:test`` built in it."""
    require_root()
    ocb = Ocibuild(tmp_path / "store")
    ctx = tmp_path / "basectx"
    ctx.mkdir()
    shutil.copy(BUSYBOX, ctx / "busybox")
    (ctx / "Dockerfile").write_text(BASE_DOCKERFILE)
    ocb.build(ctx, "-t", "base:test")
    return ocb


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    path = tmp_path / "ctx"
    path.mkdir()
    return path


def trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def by_instruction(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["instruction"]: r for r in records}
