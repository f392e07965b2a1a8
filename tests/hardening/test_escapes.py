"""Sandbox escapes, every attack in every mode (hardening/escapes.py holds the attacks).

One test per attack, parametrized over the modes (oci-runc, oci-crun, native-chroot,
rootless-runc, rootless-crun, rootless-native) and, where the storage driver matters,
the drivers: ``test_cleanup_walk[vfs/native-chroot]``. A cell passes when the attack is
refused with a clear error (exit 1, no traceback) or contained (the host canary, the
host's core_pattern, keyring, loopback services and store are untouched). The same cells
make the table of ``python -m hardening.escapes``. Cells marked ``slow_hardening`` run
with ``make hardening``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from hardening.escapes import ATTACKS, HOST_SIDE, Attack, Campaign, mode
from hardening.modes import MODES


@pytest.fixture(scope="module")
def campaign() -> Iterator[Campaign]:
    if os.geteuid() != 0:
        pytest.skip("the escape suite runs as root (it creates a test user and host canaries)")
    c = Campaign.create()
    try:
        yield c
    finally:
        c.close()


def _params(a: Attack) -> list[object]:
    marks = [pytest.mark.slow_hardening] if a.slow else []
    out: list[object] = []
    if a.independent:
        return [pytest.param(HOST_SIDE.name, "overlay", id=HOST_SIDE.name, marks=marks)]
    for d in a.drivers:
        for m in MODES:
            cell_id = m.name if len(a.drivers) == 1 else f"{d}/{m.name}"
            out.append(pytest.param(m.name, d, id=cell_id, marks=marks))
    return out


def _make_test(a: Attack) -> Callable[[Campaign, str, str], None]:
    @pytest.mark.parametrize(("mode_name", "driver"), _params(a))
    def test(campaign: Campaign, mode_name: str, driver: str) -> None:
        outcome = campaign.run(a, mode(mode_name), driver)
        if outcome.kind == "n/a":
            pytest.skip(outcome.detail)
        assert outcome.safe, f"{a.name} [{mode_name}, {driver}]: {outcome.cell()}\n{a.doc}"

    test.__name__ = "test_" + a.name.replace("-", "_")
    test.__doc__ = a.doc
    return test


for _attack in ATTACKS:
    _test = _make_test(_attack)
    globals()[_test.__name__] = _test
