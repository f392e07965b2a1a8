"""A short kill -9 campaign in the suite (the full one: python -m hardening.killcampaign)."""

from __future__ import annotations

import signal

from hardening.killcampaign import campaign
from tests.conftest import require_root


def test_kill9_leaves_a_consistent_store() -> None:
    require_root()
    trials = campaign(16, seed=7)
    bad = [t for t in trials if not t.consistent]
    assert bad == []
    assert sum(1 for t in trials if t.exit == -signal.SIGKILL) >= 4, "most were killed mid-way"
