"""The kernel overlay probe is remembered per boot, file system, user and user namespace
mapping: a fully cached rebuild does not pay a mount and two unmounts for it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ocibuild.storage import driver
from ocibuild.storage.overlay import ensure_mount_namespace


@pytest.fixture
def scratch(tmp_path: Path) -> str:
    if os.geteuid() != 0:
        pytest.skip("mounting a kernel overlay needs root here")
    ensure_mount_namespace()  # (the probe mounts: never in the host's namespace)
    return str(tmp_path / "tmp")


def test_the_answer_is_remembered_and_keyed(scratch: str) -> None:
    assert driver.probe_kernel_overlay(scratch) == ""  # root, kernel overlay: it works
    memo = Path(scratch, driver.MEMO_NAME)
    key, _, answer = memo.read_text().partition("\n")
    assert answer == ""
    assert memo.stat().st_mode & 0o777 == 0o600
    # the same key: the remembered answer, no new probe (a made-up one shows it is read)
    memo.write_text(f"{key}\nremembered: no overlay")
    assert driver.probe_kernel_overlay(scratch) == "remembered: no overlay"
    # another boot (or user, or file system): probed again
    memo.write_text(f"another-boot {key.split(' ', 1)[1]}\nremembered: no overlay")
    assert driver.probe_kernel_overlay(scratch) == ""
    assert memo.read_text() == f"{key}\n"
    assert sorted(os.listdir(scratch)) == [driver.MEMO_NAME]  # no probe dir left behind
