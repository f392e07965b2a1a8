"""vfs change detection: not by mtime alone."""

from __future__ import annotations

import os
from pathlib import Path

from ocibuild.storage import vfs


def test_same_size_same_mtime_rewrite_is_a_change(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("aaaa")
    os.utime(tree / "f", ns=(1000, 1000))
    (tree / "keep").write_text("same")
    before = vfs.snapshot(str(tree))
    with open(tree / "f", "r+") as f:  # same inode, same size, mtime put back
        f.write("bbbb")
    os.utime(tree / "f", ns=(1000, 1000))
    vfs.write_diff(str(tree), before, str(tmp_path / "diff"))
    assert sorted(os.listdir(tmp_path / "diff")) == ["f"]
    assert (tmp_path / "diff" / "f").read_text() == "bbbb"


def test_replaced_dir_is_opaque_even_with_a_reused_inode(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "old").write_text("x")
    before = vfs.snapshot(str(tree))
    (tree / "d" / "old").unlink()
    (tree / "d").rmdir()
    (tree / "d").mkdir()
    (tree / "d" / "new").write_text("y")
    vfs.write_diff(str(tree), before, str(tmp_path / "diff"))
    names = os.listxattr(tmp_path / "diff" / "d")
    assert any(n.endswith("overlay.opaque") for n in names)
    assert os.listdir(tmp_path / "diff" / "d") == ["new"]
