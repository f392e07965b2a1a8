"""ocibuild.builder.context walks and the stat cache of ocibuild.builder.hashing, on real
files: the streamed walk lists what the snapshot lists, and the stat cache file is the
JSON it always was."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ocibuild.builder.context import Source, SourceTree
from ocibuild.builder.hashing import HashCounters, StatCache
from ocibuild.dockerfile.ignore import IgnoreMatcher, load_patterns


def make_context(root: Path) -> None:
    for rel in ("a/b/c.txt", "a/b.txt", "a.txt", "-first", "keep/x.log", "keep/y.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / "skip").mkdir()
    (root / "skip" / "z").write_text("z")
    os.symlink("a.txt", root / "link")


def rels(entries: object) -> list[str]:
    return [rel for _, rel, _ in entries]  # type: ignore[attr-defined]


def test_iter_walk_streams_what_walk_lists(tmp_path: Path) -> None:
    make_context(tmp_path)
    ignore = IgnoreMatcher(load_patterns("skip\nkeep\n!keep/y.txt\n"))
    tree = SourceTree(str(tmp_path), ignore)
    top = Source(str(tmp_path), "")
    walked = tree.iter_walk(top)
    assert not isinstance(walked, list)  # a generator: nothing listed yet
    streamed = list(walked)
    assert [(h, r, s.st_ino) for h, r, s in streamed] == [
        (h, r, s.st_ino) for h, r, s in tree.walk(top)
    ]
    # names sorted, parents first; an excluded dir comes along for a re-included child
    assert rels(streamed) == [
        "-first", "a", "a/b", "a/b/c.txt", "a/b.txt", "a.txt", "keep", "keep/y.txt", "link",
    ]  # fmt: skip
    assert streamed[0][0] == str(tmp_path / "-first")
    # a source whose contents are all ignored does not match at all
    assert tree.match("skip") == []
    assert [s.rel for s in tree.match("keep")] == ["keep"]


def test_iter_walk_of_a_subdirectory_keeps_ignore_paths_from_the_root(tmp_path: Path) -> None:
    make_context(tmp_path)
    tree = SourceTree(str(tmp_path), IgnoreMatcher(load_patterns("a/b/c.txt\n")))
    (src,) = tree.match("a")
    assert rels(tree.iter_walk(src)) == ["b", "b.txt"]


def test_stat_cache_file_is_compact_json_and_reads_back(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    cache = StatCache(str(tmp_path / "cache"), str(ctx))
    cache.started_ns += 10**12  # every file is older than the racy window
    counters = HashCounters()
    names = [f"f{i}" for i in range(5000)] + ['odd \udcff é\n"name']
    for name in names:
        path = ctx / os.fsdecode(os.fsencode(name))
        path.write_bytes(os.fsencode(name))
        cache.digest(name, str(path), os.lstat(path), counters, False)
    cache.save()
    raw = Path(cache.path).read_bytes()
    # the bytes json.dumps wrote before the file was written in parts
    assert (
        raw == json.dumps({"version": 2, "files": cache._entries}, separators=(",", ":")).encode()
    )
    assert oct(os.stat(cache.path).st_mode & 0o777) == "0o600"
    again = StatCache(str(tmp_path / "cache"), str(ctx))
    fresh = HashCounters()
    for name in names:
        path = ctx / os.fsdecode(os.fsencode(name))
        again.digest(name, str(path), os.lstat(path), fresh, False)
    assert (fresh.files, fresh.files_read) == (len(names), 0)  # nothing re-read
