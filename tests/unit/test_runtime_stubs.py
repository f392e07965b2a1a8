"""runtime/stubs.py: which mount stubs runc creates and which are removed afterwards."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ocibuild.runtime.stubs import find_missing, remove_stubs

DESTS = ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/etc/hosts", "/etc/resolv.conf"]


def test_find_missing_on_scratch(tmp_path: Path) -> None:
    assert find_missing(str(tmp_path), DESTS) == [
        "dev", "dev/pts", "etc", "etc/hosts", "etc/resolv.conf",
        "proc", "sys", "sys/fs", "sys/fs/cgroup",
    ]  # fmt: skip


def test_find_missing_existing_and_symlinked(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hosts").write_text("x")
    (tmp_path / "run").mkdir()
    (tmp_path / "etc" / "resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    (tmp_path / "proc").symlink_to("/../../../../proc-elsewhere")
    got = find_missing(str(tmp_path), ["/etc/hosts", "/etc/resolv.conf", "/proc"])
    assert got == ["proc-elsewhere", "run/systemd", "run/systemd/resolve",
                   "run/systemd/resolve/stub-resolv.conf"]  # fmt: skip


def test_remove_stubs_keeps_filled_ones(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    for d in ("proc", "sys/fs/cgroup", "etc", "dev"):
        (upper / d).mkdir(parents=True)
    (upper / "etc" / "hosts").write_text("")  # empty stub
    (upper / "etc" / "resolv.conf").write_text("")
    (upper / "etc" / "passwd").write_text("written by the step")
    (upper / "dev" / "keep").write_text("k")
    os.utime(upper / "etc", ns=(1_000_000_000, 1_000_000_000))
    missing = find_missing(str(tmp_path / "nothing"), DESTS)
    removed = remove_stubs(str(upper), missing)
    assert sorted(removed) == ["etc/hosts", "etc/resolv.conf", "proc", "sys", "sys/fs",
                               "sys/fs/cgroup"]  # fmt: skip
    assert sorted(os.listdir(upper)) == ["dev", "etc"]
    assert os.listdir(upper / "etc") == ["passwd"]
    assert os.stat(upper / "etc").st_mtime_ns == 1_000_000_000  # parent time restored


def test_remove_stubs_ignores_absent_and_whiteouts(tmp_path: Path) -> None:
    assert remove_stubs(str(tmp_path), ["proc", "dev/pts"]) == []


def test_remove_stubs_never_follows_a_swapped_parent(tmp_path: Path) -> None:
    from ocibuild.runtime.stubs import remove_copied_up_parents, restore_dir_times

    host = tmp_path / "host"
    (host / "target").mkdir(parents=True)
    (host / "file").write_bytes(b"")
    (host / "kept").mkdir()
    os.utime(host, ns=(5, 5))
    upper = tmp_path / "upper"
    (upper / "a" / "c" / "target").mkdir(parents=True)
    (upper / "a" / "b").symlink_to(host)
    (upper / "x").symlink_to(host)
    removed = remove_stubs(str(upper), ["a", "a/b", "a/b/target", "a/b/file", "x/kept"])
    assert removed == []
    remove_copied_up_parents(str(upper), {"a/b/kept": (0o40755, 0, 0), "x": (0o40755, 0, 0)})
    restore_dir_times(str(upper), {"a/b": os.stat(tmp_path)})
    assert sorted(os.listdir(host)) == ["file", "kept", "target"]
    assert os.stat(host).st_mtime_ns == 5
    assert (upper / "a" / "b").is_symlink() and (upper / "a" / "c" / "target").is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="creates dirs owned by root (run as root)")
def test_make_kernel_dirs_only_missing_ones(tmp_path: Path) -> None:
    """The missing /proc, /sys, /dev are made 0755 root:root whatever the umask (BuildKit's
    layer keeps the ones runc makes); an existing one is left as it is."""
    from ocibuild.runtime.stubs import make_kernel_dirs

    (tmp_path / "sys").mkdir(mode=0o555)
    os.chmod(tmp_path / "sys", 0o555)
    old = os.umask(0o077)
    try:
        assert make_kernel_dirs(str(tmp_path)) == ["proc", "dev"]
    finally:
        os.umask(old)
    for name in ("proc", "dev"):
        st = os.lstat(tmp_path / name)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o755, 0, 0)
    assert stat.S_IMODE(os.lstat(tmp_path / "sys").st_mode) == 0o555
    assert make_kernel_dirs(str(tmp_path)) == []
