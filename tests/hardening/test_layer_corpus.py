"""The hostile-archive corpus (hardening/layers.py): every case, as a layer and via ADD."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening.layers import CASES, run_case
from tests.conftest import require_root


@pytest.fixture(autouse=True)
def _small_bomb_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    require_root()  # device nodes and chown need root
    monkeypatch.setenv("OCIBUILD_MAX_LAYER_ENTRIES", "1000")


@pytest.mark.parametrize("mode", ["layer", "archive"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_archive(case: object, mode: str, tmp_path: Path) -> None:
    outcome = run_case(case, mode, str(tmp_path))  # type: ignore[arg-type]
    assert outcome.escaped == [], f"wrote outside the destination: {outcome.escaped}"
    assert outcome.ok, f"error={outcome.error!r}"
