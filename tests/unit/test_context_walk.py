"""ocibuild.builder.context walks and the stat cache of ocibuild.builder.hashing, on real
files: the streamed walk lists what the snapshot lists, and the stat cache file is read
back whole however its reads cut it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ocibuild.builder import hashing
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


def hash_all(cache: StatCache, ctx: Path, names: list[str]) -> HashCounters:
    counters = HashCounters()
    for name in names:
        path = os.fsencode(ctx) + b"/" + os.fsencode(name)
        cache.digest(name, os.fsdecode(path), os.lstat(path), counters, False)
    return counters


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_stat_cache_file_reads_back_in_parts(
    tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    names = [f"f{i}" for i in range(3000)] + ['odd \udcff é\n"name', "日本語"]
    for name in names:
        (ctx / "x").write_bytes(b"")
        os.rename(ctx / "x", os.fsencode(ctx) + b"/" + os.fsencode(name))
    cache = StatCache(str(tmp_path / "cache"), str(ctx))
    cache.started_ns += 10**12  # every file is older than the racy window
    old = Path(cache.path).with_suffix(".json")  # a format-2 file: ignored, then removed
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"version": 2, "files": {"f0": "1 2 3 4 " + "0" * 64}}))
    assert hash_all(cache, ctx, names).files_read == len(names)
    cache.save()
    assert not old.exists()
    assert oct(os.stat(cache.path).st_mode & 0o777) == "0o600"
    raw = Path(cache.path).read_bytes()
    assert raw.startswith(b"ocibuild stat cache 3\n")
    assert b'\0odd \xff \xc3\xa9\n"name\0' in raw  # the name's own bytes
    # read back a few bytes at a time: fields and UTF-8 sequences cut anywhere
    monkeypatch.setattr(hashing, "_READ", chunk)
    again = StatCache(str(tmp_path / "cache"), str(ctx))
    assert again._entries == cache._entries
    counters = hash_all(again, ctx, names)
    assert (counters.files, counters.files_read) == (len(names), 0)  # nothing re-read
    # a file cut short is not trusted: every file is read again
    Path(cache.path).write_bytes(raw[:-1])
    assert hash_all(StatCache(str(tmp_path / "cache"), str(ctx)), ctx, names).files_read == len(
        names
    )
