"""OverlayMount / prepare_rootfs against real kernel overlayfs (in forked children)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from ocibuild.storage.overlay import OverlayMount, ensure_mount_namespace, prepare_rootfs
from tests.conftest import in_child

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="kernel overlay mounts need root"),
]


def mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _lower(tmp_path: Path) -> str:
    lower = tmp_path / "lower"
    lower.mkdir(mode=0o750)
    (lower / "keep").write_text("keep")
    (lower / "gone").write_text("gone")
    return str(lower)


def test_prepare_rootfs_layout(tmp_path: Path) -> None:
    lower = _lower(tmp_path)
    ov = prepare_rootfs([lower], str(tmp_path / "step"))
    assert ov.lowers == [lower] and not ov.mounted
    for name in ("upper", "work", "merged"):
        assert (tmp_path / "step" / name).is_dir()
    # The merged root's mode comes from the upper dir: it mirrors the top layer.
    assert stat.S_IMODE(os.stat(ov.upper).st_mode) == 0o750
    assert ov.describe().startswith(f"mount -t overlay overlay -o lowerdir={lower},upperdir=")
    assert "redirect_dir=off,metacopy=off,index=off" in ov.describe()

    scratch = prepare_rootfs([], str(tmp_path / "scratch"))
    assert scratch.lowers == [str(tmp_path / "scratch" / "lower")]
    assert os.listdir(scratch.lowers[0]) == []


def test_changes_land_in_upper(tmp_path: Path) -> None:
    lower = _lower(tmp_path)

    def child() -> dict[str, Any]:
        ov = prepare_rootfs([lower], str(tmp_path / "step"))
        with ov:
            inside = mounted(ov.target)
            Path(ov.target, "new").write_text("new")
            os.unlink(os.path.join(ov.target, "gone"))
            seen = sorted(os.listdir(ov.target))
        st = os.lstat(os.path.join(ov.upper, "gone"))
        return {
            "inside": inside,
            "after": mounted(ov.target),
            "seen": seen,
            "upper": sorted(os.listdir(ov.upper)),
            "whiteout": (stat.S_ISCHR(st.st_mode), st.st_rdev),
        }

    res = in_child(child)
    assert res["inside"] and not res["after"]
    assert res["seen"] == ["keep", "new"]
    assert res["upper"] == ["gone", "new"]
    assert res["whiteout"] == (True, 0)
    assert not mounted(str(tmp_path / "step" / "merged"))


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_unmounts_on_exception(tmp_path: Path, exc_type: type[BaseException]) -> None:
    lower = _lower(tmp_path)

    def child() -> tuple[str, bool]:
        ov = prepare_rootfs([lower], str(tmp_path / "step"))
        try:
            with ov:
                raise exc_type("boom")
        except exc_type as exc:
            return type(exc).__name__, mounted(ov.target)
        return "", True

    name, still = in_child(child)
    assert name == exc_type.__name__ and not still


def test_busy_mount_is_detached(tmp_path: Path) -> None:
    lower = _lower(tmp_path)

    def child() -> tuple[bool, bool]:
        ensure_mount_namespace()
        ov = prepare_rootfs([lower], str(tmp_path / "step"))
        ov.mount()
        fd = os.open(os.path.join(ov.target, "keep"), os.O_RDONLY)  # makes umount EBUSY
        try:
            ov.unmount()
        finally:
            os.close(fd)
        return ov.mounted, mounted(ov.target)

    assert in_child(child) == (False, False)


def test_no_lower_is_refused(tmp_path: Path) -> None:
    ov = OverlayMount(lowers=[], upper="u", work="w", target=str(tmp_path))
    with pytest.raises(OSError, match="no lower directory"):
        ov.mount()
