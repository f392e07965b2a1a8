"""storage/samedirent.py: what BuildKit's overlay differ leaves out of a layer."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ocibuild.storage.samedirent import prune_unchanged

NS = 1_700_000_000_123_456_789  # an mtime with nanoseconds
SEC = 1_700_000_000_000_000_000  # one truncated to the second (as after a tar)


def put(path: Path, content: str, mtime_ns: int = NS, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(mode)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    return tmp_path, lower, upper


def test_copy_up_with_same_metadata_is_dropped(tree: tuple[Path, Path, Path]) -> None:
    _, lower, upper = tree
    put(lower / "h" / "keep", "x\n")
    shutil.copytree(lower / "h", upper / "h")  # a copy-up: only nlink/ctime/inode differ
    os.utime(upper / "h" / "keep", ns=(NS, NS))
    os.link(upper / "h" / "keep", upper / "h" / "keep2")  # new: stays
    assert prune_unchanged(str(upper), [str(lower)]) == 1
    assert names(upper) == ["h", "h/keep2"]


def test_changes_are_kept(tree: tuple[Path, Path, Path]) -> None:
    _, lower, upper = tree
    put(lower / "mode", "m")
    put(upper / "mode", "m", mode=0o600)
    put(lower / "ns", "n")
    put(upper / "ns", "n", mtime_ns=NS + 1)
    put(lower / "size", "s")
    put(upper / "size", "ss")
    put(lower / "same-size-rewrite", "one", mtime_ns=SEC)  # truncated: content compared
    put(upper / "same-size-rewrite", "two", mtime_ns=SEC)
    put(lower / "same-content", "abc", mtime_ns=SEC)
    put(upper / "same-content", "abc", mtime_ns=SEC)
    put(upper / "new", "new")
    assert prune_unchanged(str(upper), [str(lower)]) == 1
    assert names(upper) == ["mode", "new", "ns", "same-size-rewrite", "size"]


def test_dirs_go_when_unchanged_and_emptied(tree: tuple[Path, Path, Path]) -> None:
    _, lower, upper = tree
    put(lower / "d" / "sub" / "f", "f")
    put(lower / "e" / "f", "f")
    put(upper / "d" / "sub" / "f", "f")
    (upper / "e").mkdir()
    (upper / "e" / ".wh.f").write_text("")  # a deletion keeps its dir
    (lower / "m").mkdir()
    (upper / "m").mkdir()
    (upper / "m").chmod(0o700)  # mode changed: kept even though empty
    (lower / "t").mkdir()
    (upper / "t").mkdir()  # only its mtime differs: dropped
    os.utime(upper / "t", ns=(NS, NS))
    assert prune_unchanged(str(upper), [str(lower)]) == 4
    assert names(upper) == ["e", "e/.wh.f", "m"]


def test_lower_layers_in_order_whiteouts_and_opaque_dirs(tree: tuple[Path, Path, Path]) -> None:
    root, lower, upper = tree
    top = root / "top"
    top.mkdir()
    put(lower / "a", "a")
    put(lower / "b", "b")
    put(top / "b", "BB")  # the top layer's b is the one the upper is compared with
    (top / ".wh.a").write_text("")  # a is deleted above: an upper a is new
    put(upper / "a", "a")
    put(upper / "b", "b")
    put(upper / "c", "c")
    put(lower / "c", "c")
    put(lower / "o" / "f", "f")
    (top / "o").mkdir()
    (top / "o" / ".wh..wh..opq").write_text("")  # o is replaced above: o/f is new
    put(upper / "o" / "f", "f")
    assert prune_unchanged(str(upper), [str(top), str(lower)]) == 1  # only c
    assert names(upper) == ["a", "b", "o", "o/f"]


def test_symlinks_compared_by_target(tree: tuple[Path, Path, Path]) -> None:
    _, lower, upper = tree
    for side, target in ((lower, "t1"), (upper, "t1")):
        os.symlink(target, side / "same")
        os.utime(side / "same", ns=(SEC, SEC), follow_symlinks=False)
    os.symlink("t1", lower / "other")
    os.symlink("t2", upper / "other")
    for side in (lower, upper):
        os.utime(side / "other", ns=(SEC, SEC), follow_symlinks=False)
    assert prune_unchanged(str(upper), [str(lower)]) == 1
    assert names(upper) == ["other"]


def test_no_lowers_nothing_to_compare(tree: tuple[Path, Path, Path]) -> None:
    _, _, upper = tree
    put(upper / "f", "f")
    assert prune_unchanged(str(upper), []) == 0
    assert names(upper) == ["f"]
