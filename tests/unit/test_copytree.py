"""ocibuild.fs.copytree: the fast directory copier of COPY, on real files."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ocibuild.fs import copytree
from ocibuild.fs.copytree import Entry, copy_entries


@dataclass
class Plan:
    uid: int | None = None
    gid: int | None = None
    hardlinks: dict[tuple[int, int], str] = field(default_factory=dict)
    dirs: list[tuple[str, os.stat_result]] = field(default_factory=list)

    def owner(self, st: os.stat_result) -> tuple[int, int]:
        return (
            st.st_uid if self.uid is None else self.uid,
            st.st_gid if self.gid is None else self.gid,
        )

    def mode(self, st: os.stat_result) -> int:
        return stat.S_IMODE(st.st_mode)


def walk(top: Path) -> list[Entry]:
    out: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            host = os.path.join(dirpath, name)
            out.append((host, os.path.relpath(host, top), os.lstat(host)))
    out.sort(key=lambda e: e[1])  # parents before children
    return out


def make_tree(src: Path) -> None:
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "small").write_bytes(b"x" * 10)
    (src / "empty").write_bytes(b"")
    (src / "big").write_bytes(os.urandom(copytree.SMALL * 3 + 17))
    (src / "sub" / "deep" / "f").write_text("deep")
    os.link(src / "small", src / "sub" / "hard")
    os.symlink("../small", src / "sub" / "link")
    os.chmod(src / "small", 0o4751)
    os.chmod(src / "sub", 0o750)
    os.utime(src / "big", ns=(1_000_000_000, 2_000_000_000))


def test_copies_contents_modes_links_and_times(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    dst.mkdir()
    plan = Plan(uid=123, gid=456)
    copy_entries(walk(src), str(dst), plan)
    for host, st in reversed(plan.dirs):
        os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    assert (dst / "big").read_bytes() == (src / "big").read_bytes()
    assert (dst / "small").read_bytes() == b"x" * 10
    assert (dst / "empty").read_bytes() == b""
    assert (dst / "sub" / "deep" / "f").read_text() == "deep"
    assert stat.S_IMODE(os.stat(dst / "small").st_mode) == 0o4751  # setuid kept
    assert stat.S_IMODE(os.stat(dst / "sub").st_mode) == 0o750
    assert os.stat(dst / "big").st_mtime_ns == 2_000_000_000
    assert os.stat(dst / "sub").st_mtime_ns == os.stat(src / "sub").st_mtime_ns
    assert os.readlink(dst / "sub" / "link") == "../small"
    assert os.stat(dst / "small").st_ino == os.stat(dst / "sub" / "hard").st_ino
    for p in (dst / "small", dst / "sub", dst / "sub" / "link"):
        st = os.lstat(p)
        assert (st.st_uid, st.st_gid) == (123, 456)


def test_user_xattrs_are_copied(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "f").write_text("x")
    try:
        os.setxattr(src / "f", "user.note", b"kept")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            pytest.skip(f"this file system takes no user xattrs ({exc.strerror})")
        raise
    copy_entries(walk(src), str(dst), Plan())
    assert os.getxattr(dst / "f", "user.note") == b"kept"


def test_existing_entries_are_replaced_and_dirs_merged(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "new").write_text("new")
    (src / "f").write_text("from source")
    (dst / "d").mkdir(parents=True)
    (dst / "d" / "old").write_text("old")
    (dst / "f").write_text("from image")
    copy_entries(walk(src), str(dst), Plan())
    assert (dst / "d" / "old").read_text() == "old"
    assert (dst / "d" / "new").read_text() == "new"
    assert (dst / "f").read_text() == "from source"


def test_a_dir_onto_a_symlink_or_a_file_onto_a_dir_stops_the_copy(tmp_path: Path) -> None:
    """As BuildKit v0.11.6 ("cannot copy to non-directory", checked with the real
    BuildKit): nothing is replaced and nothing is written through the symlink."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "was_link").mkdir(parents=True)
    (src / "was_link" / "inside").write_text("in")
    outside = tmp_path / "outside"
    outside.mkdir()
    dst.mkdir()
    os.symlink(str(outside), dst / "was_link")  # a symlink where the copy puts a dir
    with pytest.raises(copytree.EntryClash) as clash:
        copy_entries(walk(src), str(dst), Plan())
    assert (clash.value.rel, clash.value.dir_over_file) == ("was_link", True)
    assert (dst / "was_link").is_symlink() and list(outside.iterdir()) == []
    src2, dst2 = tmp_path / "src2", tmp_path / "dst2"
    src2.mkdir()
    (src2 / "x").write_text("file")
    (dst2 / "x").mkdir(parents=True)
    with pytest.raises(copytree.EntryClash) as clash:
        copy_entries(walk(src2), str(dst2), Plan())
    assert (clash.value.rel, clash.value.dir_over_file) == ("x", False)
    assert (dst2 / "x").is_dir()


def test_falls_back_when_the_kernel_copy_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an overlay mount copy_file_range answers EXDEV: sendfile takes over, and the
    buffered copy when sendfile is refused too."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    data = os.urandom(copytree.SMALL * 2 + 5)
    (src / "a").write_bytes(data)
    (src / "b").write_bytes(data[::-1])

    def refused(*_: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(copytree.os, "copy_file_range", refused)
    copy_entries(walk(src), str(dst), Plan())
    assert (dst / "a").read_bytes() == data
    monkeypatch.setattr(copytree.os, "sendfile", refused)
    dst2 = tmp_path / "dst2"
    dst2.mkdir()
    copy_entries(walk(src), str(dst2), Plan())
    assert (dst2 / "b").read_bytes() == data[::-1]
